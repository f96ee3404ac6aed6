"""Order fields: reading orders (owner or admin), checkout, cancel, fulfil."""

from __future__ import annotations

from ordergraph.domain.errors import DomainError, NotFound, Unauthenticated, ValidationFailed
from ordergraph.domain.model import Order, OrderStatus, User
from ordergraph.domain.read_ports import AuditRecord
from ordergraph.domain.services import orders as order_services
from ordergraph.domain.services import payments, refunds
from ordergraph.domain.services.checkout import CheckoutResult
from ordergraph.domain.services.checkout import checkout as checkout_service
from ordergraph.domain.services.payments import PayResult
from ordergraph.domain.shipping import Address
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.pagination import Connection, decode_cursor, page_size, parse_id
from ordergraph.resolvers.shipping import AddressFields, parse_address

ORDER_CURSOR = "order"


async def my_orders(ctx: RequestContext, *, first: int | None, after: str | None,
                    status: OrderStatus | None) -> Connection[Order]:
    viewer = await ctx.require_user()
    page = await ctx.deps.reader.orders_page(
        first=page_size(first, 20), after_id=decode_cursor(ORDER_CURSOR, after), status=status,
        customer_id=viewer.id)
    return Connection.from_page(ORDER_CURSOR, page)


async def orders(ctx: RequestContext, *, first: int | None, after: str | None,
                 status: OrderStatus | None, customer_id: str | None) -> Connection[Order]:
    await ctx.require_admin()
    customer = None
    if customer_id is not None:
        customer = parse_id(customer_id)
        if customer is None:
            raise ValidationFailed("customerId is not a user id.", field="customerId")
    page = await ctx.deps.reader.orders_page(
        first=page_size(first, 20), after_id=decode_cursor(ORDER_CURSOR, after), status=status,
        customer_id=customer)
    return Connection.from_page(ORDER_CURSOR, page)


async def order(ctx: RequestContext, *, id: str) -> Order | None:
    """The order for its owner or an admin; None for everyone else (no hint it exists)."""
    viewer = await ctx.require_user()
    order_id = parse_id(id)
    if order_id is None:
        return None
    found = (await ctx.deps.reader.orders_by_ids([order_id])).get(order_id)
    if found is None or not found.visible_to(viewer):
        return None
    return found


async def history(ctx: RequestContext, order: Order) -> list[AuditRecord]:
    return await ctx.loaders.order_history.load(str(order.id))


async def customer(ctx: RequestContext, order: Order) -> User:
    user = await ctx.loaders.user.load(order.customer_id)
    assert user is not None, order.customer_id  # a foreign key guarantees it
    return user


async def checkout(ctx: RequestContext, *, items: list[tuple[str, int]],
                   idempotency_key: str | None,
                   shipping_address: AddressFields | None = None) -> CheckoutResult:
    customer_id = ctx.token_user_id()  # the account itself is read by the checkout
    if customer_id is None:
        raise Unauthenticated()
    s = ctx.deps
    try:
        ship_to, lines = await _checkout_request(ctx, items, shipping_address)
        result = await checkout_service(
            uow=s.uow(), gateway=s.gateway, clock=s.clock, customer_id=customer_id, lines=lines,
            idempotency_key=idempotency_key, reservation_ttl=s.reservation_ttl,
            limits=s.checkout_limits, provider_deadline=s.payment_provider_deadline,
            ship_to=ship_to, shipping=s.shipping, token_issued_at=ctx.token_issued_at)
    except DomainError as error:
        s.metrics.checkout(error.code)
        raise
    s.metrics.checkout("ok")
    if result.customer is not None:
        ctx.know_viewer(result.customer)
    ctx.loaders.product.prime_many(result.products)  # read by the checkout: no second query
    return result


async def _checkout_request(ctx: RequestContext, items: list[tuple[str, int]],
                            shipping_address: AddressFields | None
                            ) -> tuple[Address | None, list[tuple[int, int]]]:
    """The address and the cart's (product id, quantity) lines, parsed. Refused input is
    refused only once the session is known to stand: a revoked one is UNAUTHENTICATED first,
    as it is when the checkout reads the customer (read afresh: a WebSocket's viewer is the
    one read when it connected)."""
    try:
        ship_to = parse_address(shipping_address, field_prefix="shippingAddress")
        lines = []
        for index, (raw_product_id, quantity) in enumerate(items):
            product_id = parse_id(raw_product_id)
            if product_id is None:
                raise NotFound(f"No product with id {raw_product_id!r}.",
                               field=f"items.{index}.productId")
            lines.append((product_id, quantity))
    except DomainError:
        await ctx.reread_viewer()
        raise
    return ship_to, lines


async def cancel_order(ctx: RequestContext, *, id: str) -> Order:
    viewer = await ctx.require_user()
    s = ctx.deps
    return await order_services.cancel_order(uow=s.uow(), gateways=s.gateway, clock=s.clock,
                                             order_id=_order_id(id), viewer=viewer,
                                             provider_deadline=s.payment_provider_deadline)


async def fulfil_order(ctx: RequestContext, *, id: str) -> Order:
    viewer = await ctx.require_admin()
    s = ctx.deps
    return await order_services.fulfil_order(uow=s.uow(), clock=s.clock, order_id=_order_id(id),
                                             viewer=viewer)


async def pay_order(ctx: RequestContext, *, id: str, payment_method_id: str) -> PayResult:
    viewer = await ctx.require_user()
    s = ctx.deps
    return await payments.pay_order(uow=s.uow(), gateways=s.gateway, clock=s.clock,
                                    order_id=_order_id(id), viewer=viewer,
                                    payment_method_id=payment_method_id,
                                    provider_deadline=s.payment_provider_deadline)


async def sync_payment(ctx: RequestContext, *, id: str) -> Order:
    viewer = await ctx.require_user()
    s = ctx.deps
    return await payments.sync_payment(uow=s.uow(), gateways=s.gateway, clock=s.clock,
                                       order_id=_order_id(id), viewer=viewer,
                                       provider_deadline=s.payment_provider_deadline)


async def refund_order(ctx: RequestContext, *, id: str) -> Order:
    viewer = await ctx.require_admin()
    s = ctx.deps
    return await refunds.refund_order(uow=s.uow(), gateways=s.gateway, clock=s.clock,
                                       order_id=_order_id(id), viewer=viewer,
                                       provider_deadline=s.payment_provider_deadline)


def _order_id(raw: str) -> int:
    order_id = parse_id(raw)
    if order_id is None:
        raise NotFound(f"Order {raw!r} not found.", field="id")
    return order_id


def client_secret_for(viewer: User | None, order: Order) -> str | None:
    """Only the owner sees the client secret, and only while the payment is pending."""
    if viewer is None or viewer.id != order.customer_id or order.payment is None:
        return None
    if order.status is not OrderStatus.PAYMENT_PENDING:
        return None
    return order.payment.client_secret
