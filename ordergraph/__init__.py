"""ordergraph: a transactional order and payment service with a GraphQL API."""

__version__ = "0.1.0"
