"""The contract's object types, built from domain objects.

Cheap fields are copied at construction (plain attributes resolve fastest); fields that need
more data (stock, products of order lines, customers, history) go through the request's
dataloaders, so a page of N objects costs a constant number of queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from ordergraph.domain import model, shipping
from ordergraph.domain.read_ports import AuditRecord
from ordergraph.resolvers import accounts, catalog, orders
from ordergraph.resolvers import shipping as shipping_fields
from ordergraph.resolvers.context import PaymentSettings, RequestContext
from ordergraph.schema.enums import ActorKind, OrderStatus, Role

Info = strawberry.Info[RequestContext, None]
T = TypeVar("T")


def opt(value: T | None) -> T | None:
    """An optional argument or input field: None when omitted (UNSET) or null."""
    return None if value is UNSET else value


@strawberry.type(description="Money in minor units (cents) of an ISO-4217 currency. Never a float.")
class Money:
    amount: int = strawberry.field(description="Minor units, e.g. 14999 for $149.99.")
    currency: str = strawberry.field(description="ISO-4217 code, lower case, e.g. `usd`.")
    formatted: str = strawberry.field(description='For display, e.g. "$149.99".')

    @classmethod
    def of(cls, money: model.Money) -> Money:
        return cls(amount=money.amount, currency=money.currency, formatted=money.formatted())


@strawberry.type(description="A postal address, as the order or the customer keeps it.")
class Address:
    name: str
    line1: str
    line2: str | None
    city: str
    postal_code: str
    region: str | None
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, upper case.")

    @classmethod
    def of(cls, address: shipping.Address | None) -> Address | None:
        if address is None:
            return None
        return cls(name=address.name, line1=address.line1, line2=address.line2,
                   city=address.city, postal_code=address.postal_code, region=address.region,
                   country=address.country)


@strawberry.type(description="An account. Customers see themselves; admins see everyone.")
class User:
    id: strawberry.ID
    email: str
    name: str | None
    role: Role
    created_at: datetime

    @strawberry.field(description="Where the checkout page ships by default; only the user "
                                  "sees it (null for everyone else).")
    async def default_address(self, info: Info) -> Address | None:
        return Address.of(await shipping_fields.default_address(info.context, int(self.id)))

    @classmethod
    def of(cls, user: model.User) -> User:
        return cls(id=strawberry.ID(str(user.id)), email=user.email, name=user.name,
                   role=user.role, created_at=user.created_at)


@strawberry.type(description="A product's stock level.")
class Stock:
    product_id: strawberry.ID
    available: int = strawberry.field(description="Units that can be bought now.")
    updated_at: datetime
    _reserved: strawberry.Private[int]

    @strawberry.field(description="Units held by unpaid orders; null unless you are an admin.")
    async def reserved(self, info: Info) -> int | None:
        return self._reserved if await info.context.is_admin() else None

    @classmethod
    def of(cls, stock: model.Stock) -> Stock:
        return cls(product_id=strawberry.ID(str(stock.product_id)), available=stock.available,
                   updated_at=stock.updated_at, _reserved=stock.reserved)


@strawberry.type(description="Something the shop sells.")
class Product:
    id: strawberry.ID
    sku: str = strawberry.field(description='URL-safe and unique, e.g. "mechanical-keyboard".')
    name: str
    description: str
    price: Money
    active: bool = strawberry.field(
        description="Inactive products are hidden from customers and cannot be bought.")
    created_at: datetime
    updated_at: datetime
    _id: strawberry.Private[int]

    _stock: strawberry.Private[model.Stock | None] = None

    @strawberry.field(description="Live stock level.")
    def stock(self, info: Info) -> Stock:
        if self._stock is not None:  # read with the page: no task, no loader round
            return Stock.of(self._stock)
        return self._load_stock(info)  # type: ignore[return-value] # awaited by GraphQL

    async def _load_stock(self, info: Info) -> Stock:
        return Stock.of(await catalog.stock_of(info.context, self._id))

    @classmethod
    def of(cls, product: model.Product, stock: model.Stock | None = None) -> Product:
        return cls(id=strawberry.ID(str(product.id)), sku=product.sku, name=product.name,
                   description=product.description, price=Money.of(product.price),
                   active=product.active, created_at=product.created_at,
                   updated_at=product.updated_at, _id=product.id, _stock=stock)


@strawberry.type(description="One line of an order.")
class OrderItem:
    quantity: int
    unit_price: Money = strawberry.field(description="The price at checkout time.")
    total: Money
    _product_id: strawberry.Private[int]

    @strawberry.field(description="The product as it is now (see unitPrice for the price paid).")
    async def product(self, info: Info) -> Product:
        product = await info.context.loaders.product.load(self._product_id)
        assert product is not None, self._product_id  # a foreign key guarantees it
        return Product.of(product)


@strawberry.type(description="The order's payment at the provider.")
class Payment:
    provider: str = strawberry.field(description='"stripe".')
    intent_id: str | None
    status: str | None = strawberry.field(description="The provider's last known status.")
    last_error: str | None
    refund_status: str | None = strawberry.field(
        description="REQUESTED, REQUIRED (paid after cancellation: being sent back) or "
                    "SUCCEEDED; null when no refund was asked for.")
    _order: strawberry.Private[model.Order]

    @strawberry.field(description="For Stripe.js; only the owner sees it, only while "
                                  "PAYMENT_PENDING.")
    async def client_secret(self, info: Info) -> str | None:
        return orders.client_secret_for(await info.context.viewer(), self._order)


@strawberry.type(description="One change in the audit log.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor_kind: ActorKind
    action: str = strawberry.field(
        description="e.g. ORDER_CREATED, ORDER_STATUS_CHANGED, STOCK_ADJUSTED, PRODUCT_UPDATED.")
    entity_type: str = strawberry.field(description="ORDER, PRODUCT, INVENTORY or USER.")
    entity_id: strawberry.ID
    before: JSON | None
    after: JSON | None
    _record: strawberry.Private[AuditRecord]

    @strawberry.field(description="Who made the change, when actorKind is USER and you may "
                                  "know: admins see anyone, customers only themselves (staff "
                                  "show as actorRole).")
    async def actor(self, info: Info) -> User | None:
        user = await accounts.actor_of(info.context, self._record)
        return User.of(user) if user else None

    @strawberry.field(description="The role the change was made in, when actorKind is USER.")
    async def actor_role(self, info: Info) -> Role | None:
        return await accounts.actor_role_of(info.context, self._record)

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntry:
        return cls(id=strawberry.ID(str(record.id)), at=record.at, actor_kind=record.actor.kind,
                   action=record.action, entity_type=record.entity_type,
                   entity_id=strawberry.ID(record.entity_id), before=record.before,
                   after=record.after, _record=record)


@strawberry.type(description="A customer's order. Visible to its owner and to admins.")
class Order:
    id: strawberry.ID
    number: int = strawberry.field(description="Human-friendly, increasing.")
    status: OrderStatus
    items: list[OrderItem]
    subtotal: Money = strawberry.field(description="The items at their prices at checkout.")
    shipping: Money = strawberry.field(description="Shipping as it cost at checkout; 0 for "
                                                   "an order without an address.")
    total: Money = strawberry.field(description="subtotal + shipping: what the customer pays.")
    shipping_address: Address | None = strawberry.field(
        description="Where it ships, as given at checkout; null when not shipped.")
    reserved_until: datetime | None = strawberry.field(
        description="While PAYMENT_PENDING: when the stock goes back on sale if unpaid.")
    next_statuses: list[OrderStatus] = strawberry.field(
        description="The statuses the state machine allows next.")
    version: int = strawberry.field(description="Increases by one on every change.")
    created_at: datetime
    updated_at: datetime
    _order: strawberry.Private[model.Order]

    @strawberry.field(description="Who placed the order.")
    async def customer(self, info: Info) -> User:
        return User.of(await orders.customer(info.context, self._order))

    @strawberry.field(description="The order's payment, once one was opened.")
    def payment(self) -> Payment | None:
        payment = self._order.payment
        if payment is None:
            return None
        return Payment(provider=payment.provider, intent_id=payment.intent_id,
                       status=payment.status, last_error=payment.last_error,
                       refund_status=payment.refund_status.value if payment.refund_status
                       else None, _order=self._order)

    @strawberry.field(description="This order's audit trail, oldest first.")
    async def history(self, info: Info) -> list[AuditEntry]:
        return [AuditEntry.of(record) for record in await orders.history(info.context,
                                                                          self._order)]

    @classmethod
    def of(cls, order: model.Order) -> Order:
        return cls(
            id=strawberry.ID(str(order.id)), number=order.number, status=order.status,
            items=[OrderItem(quantity=line.quantity, unit_price=Money.of(line.unit_price),
                             total=Money.of(line.total), _product_id=line.product_id)
                   for line in order.lines],
            subtotal=Money.of(order.subtotal), shipping=Money.of(order.shipping),
            total=Money.of(order.total), shipping_address=Address.of(order.shipping_address),
            reserved_until=order.reserved_until,
            next_statuses=list(order.next_statuses), version=order.version,
            created_at=order.created_at, updated_at=order.updated_at, _order=order)


@strawberry.type(description="How the web client takes payments.")
class PaymentConfig:
    provider: str
    publishable_key: str | None
    stripe_js_url: str = strawberry.field(
        description="Real Stripe.js, or the local emulator's copy in local mode.")
    mode: str = strawberry.field(description='"stripe" or "local".')

    @classmethod
    def of(cls, settings: PaymentSettings) -> PaymentConfig:
        return cls(provider=settings.provider, publishable_key=settings.publishable_key,
                   stripe_js_url=settings.stripe_js_url, mode=settings.mode)


@strawberry.type(description="What shipping costs, to show before paying. An order with an "
                             "address pays `flatRate`, or nothing when its subtotal is at least "
                             "`freeShippingOver`; one without an address pays no shipping.")
class ShippingRates:
    flat_rate: Money = strawberry.field(description="Per order; 0 means free.")
    free_shipping_over: Money | None = strawberry.field(
        description="Subtotals from this amount on ship free; null: never by subtotal.")
    required: bool = strawberry.field(description="Whether checkout needs a shippingAddress.")

    @classmethod
    def of(cls, rates: shipping.ShippingRates, currency: str) -> ShippingRates:
        free = rates.free_over_cents
        return cls(flat_rate=Money.of(model.Money(rates.flat_cents, currency)),
                   free_shipping_over=None if free is None
                   else Money.of(model.Money(free, currency)),
                   required=rates.required)
