"""A customer's default shipping address, which the checkout page fills in."""

from __future__ import annotations

from ordergraph.domain.errors import NotFound
from ordergraph.domain.model import User
from ordergraph.domain.ports import Clock, UnitOfWork
from ordergraph.domain.services.transaction import retrying
from ordergraph.domain.shipping import Address


async def update_default_address(*, uow: UnitOfWork, clock: Clock, user_id: int,
                                 address: Address | None) -> User:
    """Keep `address` as the user's default (None forgets it); orders keep their own."""
    async for attempt in retrying(uow):
        async with attempt:
            user = await uow.users.get(user_id, for_update=True)  # one update of a user at once
            if user is None:
                raise NotFound(f"User {user_id} not found.")
            await uow.addresses.set_default(user_id, address, at=clock.now())
            await uow.commit()
    return user
