"""ordergraph: a transactional order and payment service with a GraphQL API."""

from importlib.metadata import PackageNotFoundError, version

try:
    # pyproject.toml's version, as installed: its one source.
    __version__ = version("ordergraph")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"
