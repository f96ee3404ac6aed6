"""Shipping fields: addresses (given at checkout, kept as a default) and the shop's rates."""

from __future__ import annotations

from collections.abc import Mapping

from ordergraph.domain.model import User
from ordergraph.domain.services import addresses
from ordergraph.domain.shipping import Address, ShippingRates
from ordergraph.resolvers.context import RequestContext

# An address as the API gives it: name, line1, line2, city, postal_code, region, country.
AddressFields = Mapping[str, str | None]


def parse_address(fields: AddressFields | None, *, field_prefix: str) -> Address | None:
    """The address, validated and normalised; VALIDATION_FAILED names the part at fault
    (e.g. `shippingAddress.country`)."""
    if fields is None:
        return None
    return Address.parse(name=fields["name"] or "", line1=fields["line1"] or "",
                         line2=fields.get("line2"), city=fields["city"] or "",
                         postal_code=fields["postal_code"] or "", region=fields.get("region"),
                         country=fields["country"] or "", field_prefix=field_prefix)


def rates(ctx: RequestContext) -> ShippingRates:
    return ctx.deps.shipping


async def default_address(ctx: RequestContext, user_id: int) -> Address | None:
    """The user's own default address: only they see it (an order shows where it ships)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.id != user_id:
        return None
    return await ctx.deps.reader.default_address(user_id)


async def update_default_address(ctx: RequestContext, *,
                                 fields: AddressFields | None) -> User:
    viewer = await ctx.require_user()
    address = parse_address(fields, field_prefix="address")
    s = ctx.deps
    return await addresses.update_default_address(uow=s.uow(), clock=s.clock, user_id=viewer.id,
                                                  address=address)
