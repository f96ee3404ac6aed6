"""The domain's enums, exposed to GraphQL under the contract's names."""

from __future__ import annotations

import strawberry

from ordergraph.domain import model

Role = strawberry.enum(model.Role, name="Role", description="What a user may do.")
OrderStatus = strawberry.enum(
    model.OrderStatus, name="OrderStatus",
    description="Where an order is in its life: CREATED -> PAYMENT_PENDING -> PAID -> "
                "FULFILLED, or CANCELLED, FAILED, REFUNDED.")
ActorKind = strawberry.enum(model.ActorKind, name="ActorKind",
                            description="Who made a change.")
