"""checkout: reserve a cart's stock and open its payment, as ARCHITECTURE.md walks it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ordergraph.domain.errors import (
    IdempotencyKeyReused,
    NotFound,
    TooManyOpenOrders,
    ValidationFailed,
)
from ordergraph.domain.model import (
    MAX_GRAPHQL_INT,
    Actor,
    Cart,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Product,
    User,
)
from ordergraph.domain.ports import Clock, PaymentGateway, UnitOfWork
from ordergraph.domain.services.auth import current_account
from ordergraph.domain.services.payment_opening import cancel_orphan_intent, open_intent
from ordergraph.domain.services.provider_deadline import DEFAULT_PROVIDER_DEADLINE, within
from ordergraph.domain.services.transaction import retrying
from ordergraph.domain.shipping import Address, ShippingRates

MAX_IDEMPOTENCY_KEY_LENGTH = 128


@dataclass(frozen=True, slots=True)
class CheckoutLimits:
    """What one customer may hold unpaid at once (0: no limit): one account must not keep a
    product sold out by checking out again and again without paying."""

    max_open_orders: int = 0
    max_reserved_units: int = 0

    @property
    def apply(self) -> bool:
        return bool(self.max_open_orders or self.max_reserved_units)


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    order: Order
    client_secret: str | None
    # The cart's products as the checkout read them (callers can show them without a read).
    products: Mapping[int, Product] = field(default_factory=dict)
    # The customer as the checkout read them, in its first statement (the request's viewer).
    customer: User | None = None


FREE_SHIPPING = ShippingRates()


async def checkout(*, uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, customer_id: int,
                   lines: Iterable[tuple[int, int]], idempotency_key: str | None,
                   reservation_ttl: timedelta, limits: CheckoutLimits = CheckoutLimits(),
                   provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE,
                   ship_to: Address | None = None,
                   shipping: ShippingRates = FREE_SHIPPING,
                   token_issued_at: Callable[[], datetime | None] | None = None
                   ) -> CheckoutResult:
    """Create an order for the cart, reserve its stock, and open its PaymentIntent.

    The customer's account is read in the checkout's first statement: an account that no
    longer exists, or whose password was changed after the caller's token was issued
    (`token_issued_at`; without it the caller is trusted as signed in now), is
    Unauthenticated with nothing written. Their email goes to the provider for the receipt.
    An order with an address (`ship_to`) pays shipping as `shipping` says; one without
    ships nothing and pays none. Raises ValidationFailed, NotFound, InsufficientStock,
    TooManyOpenOrders, IdempotencyKeyReused or Unauthenticated with nothing written;
    PaymentFailed(PAYMENT_PROVIDER_ERROR) after cancelling the order if the provider cannot
    open the payment within `provider_deadline`. The same key with the same cart and address
    returns the same order, and finishes it if its first checkout died before the payment
    was opened.
    """
    try:
        cart = _checked_request(lines, idempotency_key, ship_to, shipping)
    except ValidationFailed:
        # A session that no longer stands hears that first, whatever it sent.
        if token_issued_at is not None:
            await _current_customer(uow, customer_id, token_issued_at)
        raise
    actor = Actor.user(customer_id)

    # Transaction 1: the order, its lines and the reserved stock.
    async for attempt in retrying(uow):
        async with attempt:
            # The customer (locked while their unpaid orders are counted, so that two
            # checkouts of one customer count one by one) and the order an earlier try with
            # this idempotency key made: one statement, the checkout's first.
            found, keyed_order_id = await uow.users.get_for_checkout(
                customer_id, idempotency_key=idempotency_key, for_update=limits.apply)
            customer = current_account(found, issued_at=token_issued_at or clock.now)
            order, products = await _reserve_cart(uow, clock, cart, customer, keyed_order_id,
                                                  idempotency_key, actor, reservation_ttl,
                                                  limits, ship_to, shipping)
            await uow.commit()
    if order.status is not OrderStatus.CREATED:  # the same key and cart again: that order
        return CheckoutResult(order, _client_secret(order), customer=customer)
    # CREATED: ours, or one whose first checkout died (or is still running) before opening
    # its payment; the intent's idempotency key makes both open the same intent.
    resumed = not products

    # Step 3: the provider call happens outside any transaction: no row lock is held.
    intent = await open_intent(uow, gateway, clock, order, provider_deadline,
                                cancel_on_failure=not resumed, receipt_email=customer.email)
    payment = Payment(provider=gateway.provider, intent_id=intent.id,
                      client_secret=intent.client_secret, status=intent.status)
    # First try the order as transaction 1 committed it, without reading it again (its
    # version guards the update); if it changed meanwhile, the retry reads it under lock.
    # Transaction 2: the payment on the order (PAYMENT_PENDING).
    known: Order | None = order
    async for attempt in retrying(uow):
        async with attempt:
            order = await _open_payment(uow, clock, order.id, payment, reservation_ttl, actor,
                                        known=known)
            await uow.commit()
        known = None
    if order.status is not OrderStatus.PAYMENT_PENDING or order.payment is None or \
            order.payment.intent_id != intent.id:
        # Cancelled while we were talking to the provider: do not leave the intent open
        # (within the deadline too; an intent left open that is paid is refunded).
        await cancel_orphan_intent(within(gateway, provider_deadline), intent.id, order.id)
    return CheckoutResult(order, _client_secret(order), products, customer)


async def _reserve_cart(uow: UnitOfWork, clock: Clock, cart: Cart, customer: User,
                        keyed_order_id: int | None, idempotency_key: str | None, actor: Actor,
                        reservation_ttl: timedelta, limits: CheckoutLimits,
                        ship_to: Address | None,
                        shipping: ShippingRates) -> tuple[Order, dict[int, Product]]:
    """Transaction 1: the order in CREATED with its stock reserved until its deadline, or
    nothing at all. The deadline is set now, not when the payment opens, so an order whose
    checkout died half-way expires like any unpaid reservation.

    Returns the order and the cart's products; no products when the idempotency key found
    the order an earlier checkout made."""
    customer_id = customer.id
    if keyed_order_id is not None:
        existing = await uow.orders.get(keyed_order_id)
        assert existing is not None, keyed_order_id  # orders are never deleted
        if existing.cart_fingerprint != cart.fingerprint(ship_to):
            raise IdempotencyKeyReused()
        return existing, {}
    if limits.apply:
        await _ensure_within_limits(uow, customer_id, cart, limits)

    products = await uow.products.get_many(cart.product_ids)
    for product_id in cart.product_ids:
        product = products.get(product_id)
        if product is None or not product.active:
            raise NotFound(f"Product {product_id} does not exist or is not on sale.",
                           field=f"items.{cart.line_of(product_id)}.productId")
    currencies = {product.price.currency for product in products.values()}
    if len(currencies) != 1:
        raise ValidationFailed("All products in a cart must have the same currency.",
                               field="items")

    now = clock.now()
    order = Order(
        id=0, customer_id=customer_id, status=OrderStatus.CREATED,
        lines=[OrderLine(pid, qty, products[pid].price) for pid, qty in cart.quantities],
        currency=currencies.pop(), version=1, created_at=now, updated_at=now,
        reserved_until=now + reservation_ttl,
        idempotency_key=idempotency_key, cart_fingerprint=cart.fingerprint(ship_to),
        shipping_address=ship_to,
    )
    if ship_to is not None:  # a snapshot: later changes of the rates change no order
        order.shipping_cents = shipping.cost_cents(order.subtotal.amount)
    if order.total.amount > MAX_GRAPHQL_INT:
        raise ValidationFailed("The order total is too large.", field="items")
    # Everything that needs no lock first: a hot product's row lock is then held for the
    # lock, the update, the audit rows and the commit only. A shortfall rolls it all back.
    await uow.orders.add(order)
    order.record_placed(actor=actor)

    # FOR UPDATE in product-id order, telling the repository what reserve() will move (it
    # may write that in the same statement: one round trip under the hot row's lock).
    stocks = await uow.inventory.lock(
        cart.product_ids, planned={pid: (-qty, qty) for pid, qty in cart.quantities}, at=now)
    for product_id, quantity in cart.quantities:
        stocks[product_id].ensure_available(
            quantity, field_name=f"items.{cart.line_of(product_id)}.quantity",
            product_name=products[product_id].name)
    for product_id, quantity in cart.quantities:
        stocks[product_id].reserve(quantity, order_id=order.id, actor=actor, at=now)
    await uow.inventory.save(list(stocks.values()))
    return order, products


async def _ensure_within_limits(uow: UnitOfWork, customer_id: int, cart: Cart,
                                limits: CheckoutLimits) -> None:
    """Refuse a checkout that would take the customer past their unpaid limits. The
    customer's row, locked by the checkout's first read, makes two concurrent checkouts of
    one customer count one by one."""
    open_orders, held_units = await uow.orders.open_unpaid(customer_id)
    if limits.max_open_orders and open_orders >= limits.max_open_orders:
        raise TooManyOpenOrders(
            f"You have {open_orders} unpaid orders; pay or cancel one before checking out "
            f"again (at most {limits.max_open_orders}).")
    units = sum(quantity for _, quantity in cart.quantities)
    if limits.max_reserved_units and held_units + units > limits.max_reserved_units:
        raise TooManyOpenOrders(
            f"Unpaid orders may hold at most {limits.max_reserved_units} units; you hold "
            f"{held_units} and this cart has {units}.", field="items")


async def _open_payment(uow: UnitOfWork, clock: Clock, order_id: int, payment: Payment,
                        reservation_ttl: timedelta, actor: Actor,
                        known: Order | None = None) -> Order:
    """Transaction 2: CREATED -> PAYMENT_PENDING, holding the stock until reserved_until."""
    if known is not None:
        uow.orders.attach(known)
        order: Order | None = known
    else:
        order = await uow.orders.get(order_id, for_update=True)
    assert order is not None, order_id
    if order.status is OrderStatus.CREATED:
        now = clock.now()
        order.open_payment(payment, reserved_until=now + reservation_ttl, actor=actor, at=now)
        await uow.orders.save(order)
    return order


def _checked_request(lines: Iterable[tuple[int, int]], idempotency_key: str | None,
                     ship_to: Address | None, shipping: ShippingRates) -> Cart:
    """The cart, if the request is well-formed; ValidationFailed otherwise (nothing read)."""
    cart = Cart.from_lines(lines)
    if ship_to is None and shipping.required:
        raise ValidationFailed("Enter the address to ship to.", field="shippingAddress")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationFailed(
            f"An idempotency key has 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            field="idempotencyKey",
        )
    return cart


async def _current_customer(uow: UnitOfWork, customer_id: int,
                            token_issued_at: Callable[[], datetime | None]) -> User:
    """The customer, read on their own (only when the request is refused before transaction
    1, which reads them otherwise); Unauthenticated if the session no longer stands."""
    async with uow:
        found = await uow.users.get(customer_id)
    return current_account(found, issued_at=token_issued_at)


def _client_secret(order: Order) -> str | None:
    if order.status is OrderStatus.PAYMENT_PENDING and order.payment is not None:
        return order.payment.client_secret
    return None
