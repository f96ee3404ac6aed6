"""The GraphQL schema: Strawberry types, inputs, result unions, permissions, root types."""
