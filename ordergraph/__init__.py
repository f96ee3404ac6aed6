"""ordergraph: a transactional order and payment service with a GraphQL API."""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _installed_version

try:
    # pyproject.toml's version, as installed: its one source.
    __version__ = _installed_version("ordergraph")
except _NotInstalled:  # a source tree that was never installed
    __version__ = "unknown"
