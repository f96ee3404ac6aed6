"""The functions behind GraphQL fields: check who asks, call a use case or a query, return
domain objects. No Strawberry here; `schema/` maps results and errors to GraphQL types."""
