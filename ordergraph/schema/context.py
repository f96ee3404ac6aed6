"""What the web layer hands the schema: the per-request context and the app's dependencies
(the web routes reach the resolvers' types only through the schema)."""

from ordergraph.resolvers.context import Deps, Loaders, PaymentSettings, RequestContext

__all__ = ["Deps", "Loaders", "PaymentSettings", "RequestContext"]
