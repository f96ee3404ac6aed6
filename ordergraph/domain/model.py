"""The shop's aggregates and value objects: money, products, stock, orders, users.

Aggregates change only through their methods, which enforce the rules and append the events
that describe the change; repositories persist the state and hand the events to the unit of
work, which audits them in the same transaction and publishes them after commit.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ordergraph.domain import events as ev
from ordergraph.domain.errors import InsufficientStock, InvalidTransition, ValidationFailed
from ordergraph.domain.shipping import Address

# GraphQL's Int is a signed 32-bit integer: every amount and count we expose must fit in it.
MAX_GRAPHQL_INT = 2**31 - 1
MAX_PRICE_CENTS = 99_999_999
MAX_STOCK_LEVEL = 1_000_000_000


# ---- money ------------------------------------------------------------------------------

# Minor units per currency (ISO 4217 exponent); two unless listed.
_CURRENCY_EXPONENT = {"jpy": 0, "krw": 0, "vnd": 0, "clp": 0, "isk": 0, "kwd": 3, "bhd": 3}
_CURRENCY_SYMBOL = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


@dataclass(frozen=True, slots=True)
class Money:
    """An integer amount of a currency's minor units (cents). Never a float."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def __mul__(self, times: int) -> Money:
        return Money(self.amount * times, self.currency)

    def formatted(self) -> str:
        """Human-readable amount, e.g. "$149.99" or "1,500 JPY"."""
        exponent = _CURRENCY_EXPONENT.get(self.currency.lower(), 2)
        sign = "-" if self.amount < 0 else ""
        units, minor = divmod(abs(self.amount), 10**exponent)
        number = f"{units:,}" + (f".{minor:0{exponent}d}" if exponent else "")
        symbol = _CURRENCY_SYMBOL.get(self.currency.lower())
        return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {self.currency.upper()}"


# ---- actors and roles -------------------------------------------------------------------


class Role(enum.Enum):
    CUSTOMER = "CUSTOMER"
    ADMIN = "ADMIN"


class ActorKind(enum.Enum):
    USER = "USER"
    SYSTEM = "SYSTEM"
    PAYMENT_PROVIDER = "PAYMENT_PROVIDER"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user, the system (sweeper), or the payment provider (webhook)."""

    kind: ActorKind
    user_id: int | None = None

    @classmethod
    def user(cls, user_id: int) -> Actor:
        return cls(ActorKind.USER, user_id)


SYSTEM = Actor(ActorKind.SYSTEM)
PAYMENT_PROVIDER = Actor(ActorKind.PAYMENT_PROVIDER)


# ---- users ------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed email; VALIDATION_FAILED if it does not look like one."""
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValidationFailed("Enter a valid email address.", field="email")
    return email


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            field="password",
        )


@dataclass
class User:
    id: int
    email: str
    name: str | None
    role: Role
    password_hash: str
    created_at: datetime
    # Set by a password reset: tokens issued before it no longer authenticate.
    password_changed_at: datetime | None = None
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def change_role(self, role: Role, *, actor: Actor, at: datetime) -> None:
        if role is self.role:
            return
        previous, self.role = self.role, role
        self.events.append(
            ev.UserRoleChanged(at=at, actor=actor, user_id=self.id, before=previous.value,
                               after=role.value)
        )


# ---- catalog ----------------------------------------------------------------------------

_SKU = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def check_sku(sku: str) -> str:
    if len(sku) > 64 or not _SKU.match(sku):
        raise ValidationFailed(
            "SKU must be lower-case letters, digits and single dashes, up to 64 characters.",
            field="sku",
        )
    return sku


def check_product_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed("Name must be 1 to 200 characters.", field="name")
    return name


def check_description(description: str) -> str:
    if len(description) > 5000:
        raise ValidationFailed("Description must be at most 5000 characters.",
                               field="description")
    return description


def check_price(price_cents: int) -> int:
    if not 0 < price_cents <= MAX_PRICE_CENTS:
        raise ValidationFailed(
            f"Price must be between 1 and {MAX_PRICE_CENTS} cents.", field="priceCents"
        )
    return price_cents


def check_stock_level(level: int, *, field_name: str) -> int:
    if not 0 <= level <= MAX_STOCK_LEVEL:
        raise ValidationFailed(
            f"Stock must be between 0 and {MAX_STOCK_LEVEL}.", field=field_name
        )
    return level


@dataclass
class Product:
    id: int
    sku: str
    name: str
    description: str
    price: Money
    active: bool
    created_at: datetime
    updated_at: datetime
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.id, "sku": self.sku, "name": self.name, "description": self.description,
            "price": self.price.amount, "currency": self.price.currency, "active": self.active,
        }

    def update(self, *, name: str | None, description: str | None, price_cents: int | None,
               active: bool | None, actor: Actor, at: datetime) -> None:
        before = self.snapshot()
        if name is not None:
            self.name = check_product_name(name)
        if description is not None:
            self.description = check_description(description)
        if price_cents is not None:
            self.price = Money(check_price(price_cents), self.price.currency)
        if active is not None:
            self.active = active
        after = self.snapshot()
        if after != before:
            self.updated_at = at
            self.events.append(
                ev.ProductUpdated(at=at, actor=actor, product_id=self.id, before=before,
                                  after=after)
            )


class StockReason(enum.Enum):
    """Why stock moved; the ledger (stock_movements) and the audit log record it."""

    INITIAL = "INITIAL"
    RESERVED = "RESERVED"    # checkout: available -> reserved
    SOLD = "SOLD"            # payment succeeded: reserved units leave the shop
    RELEASED = "RELEASED"    # cancelled, failed or expired: reserved -> available
    SET = "SET"              # admin: absolute level
    ADJUSTED = "ADJUSTED"    # admin: relative change
    RESTOCKED = "RESTOCKED"  # a paid order was refunded before shipping: units back on sale


@dataclass
class Stock:
    """A product's inventory row: units on sale (`available`) and held by open orders."""

    product_id: int
    available: int
    reserved: int
    updated_at: datetime
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    def snapshot(self) -> dict[str, int]:
        return {"available": self.available, "reserved": self.reserved}

    def ensure_available(self, quantity: int, *, field_name: str | None = None,
                         product_name: str | None = None) -> None:
        if quantity > self.available:
            raise InsufficientStock(product_id=self.product_id, requested=quantity,
                                    available=self.available, field=field_name,
                                    product_name=product_name)

    def reserve(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self.ensure_available(quantity)
        self._move(-quantity, quantity, StockReason.RESERVED, actor=actor, at=at,
                   order_id=order_id)

    def sell(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self._move(0, -quantity, StockReason.SOLD, actor=actor, at=at, order_id=order_id)

    def release(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self._move(quantity, -quantity, StockReason.RELEASED, actor=actor, at=at,
                   order_id=order_id)

    def restock(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self._move(quantity, 0, StockReason.RESTOCKED, actor=actor, at=at, order_id=order_id)

    def set_available(self, level: int, *, actor: Actor, at: datetime,
                      reason: StockReason = StockReason.SET, note: str | None = None) -> None:
        check_stock_level(level, field_name="available")
        self._move(level - self.available, 0, reason, actor=actor, at=at, note=note)

    def adjust(self, delta: int, *, actor: Actor, at: datetime, note: str | None) -> None:
        if self.available + delta < 0:
            raise ValidationFailed(
                f"Cannot remove {-delta} units: only {self.available} available.", field="delta"
            )
        check_stock_level(self.available + delta, field_name="delta")
        self._move(delta, 0, StockReason.ADJUSTED, actor=actor, at=at, note=note)

    def _move(self, delta_available: int, delta_reserved: int, reason: StockReason, *,
              actor: Actor, at: datetime, order_id: int | None = None,
              note: str | None = None) -> None:
        if delta_available == 0 and delta_reserved == 0:
            return
        before = self.snapshot()
        self.available += delta_available
        self.reserved += delta_reserved
        if self.available < 0 or self.reserved < 0:
            # The database's CHECK constraints refuse this too; failing here names the bug.
            raise AssertionError(f"stock of product {self.product_id} would go negative "
                                 f"({reason.value}: {before} -> {self.snapshot()})")
        self.updated_at = at
        self.events.append(ev.StockChanged(
            at=at, actor=actor, product_id=self.product_id, reason=reason.value,
            delta_available=delta_available, delta_reserved=delta_reserved,
            before=before, after=self.snapshot(), order_id=order_id, note=note,
        ))


# ---- carts ------------------------------------------------------------------------------

MAX_CART_LINES = 100
MAX_LINE_QUANTITY = 1000


@dataclass(frozen=True, slots=True)
class Cart:
    """A validated cart: product id -> quantity, duplicate lines merged, in product-id order."""

    quantities: tuple[tuple[int, int], ...]
    # Where each product first appeared in the customer's lines, to point errors at it.
    first_line: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_lines(cls, lines: Iterable[tuple[int, int]]) -> Cart:
        lines = list(lines)
        if not 1 <= len(lines) <= MAX_CART_LINES:
            raise ValidationFailed(
                f"A cart holds 1 to {MAX_CART_LINES} lines.", field="items"
            )
        merged: dict[int, int] = {}
        first_line: dict[int, int] = {}
        for index, (product_id, quantity) in enumerate(lines):
            if not 1 <= quantity <= MAX_LINE_QUANTITY:
                raise ValidationFailed(
                    f"Quantity must be between 1 and {MAX_LINE_QUANTITY}.",
                    field=f"items.{index}.quantity",
                )
            merged[product_id] = merged.get(product_id, 0) + quantity
            first_line.setdefault(product_id, index)
        for product_id, quantity in merged.items():
            # The cap holds for the product, however many lines ask for it.
            if quantity > MAX_LINE_QUANTITY:
                raise ValidationFailed(
                    f"At most {MAX_LINE_QUANTITY} of one product per order ({quantity} asked "
                    "for across the cart's lines).",
                    field=f"items.{first_line[product_id]}.quantity",
                )
        return cls(tuple(sorted(merged.items())), tuple(sorted(first_line.items())))

    def line_of(self, product_id: int) -> int:
        """The index of the customer's first line for this product."""
        return dict(self.first_line).get(product_id, 0)

    @property
    def product_ids(self) -> list[int]:
        return [product_id for product_id, _ in self.quantities]

    def fingerprint(self, ship_to: Address | None = None) -> str:
        """Stable digest of the merged cart and where it ships: equal carts to equal
        addresses give equal fingerprints (without an address, the cart's alone, as orders
        from before shipping addresses recorded it)."""
        text = ";".join(f"{pid}x{qty}" for pid, qty in self.quantities)
        if ship_to is not None:
            text += f"|ship:{ship_to.fingerprint()}"
        return hashlib.sha256(text.encode()).hexdigest()


# ---- orders -----------------------------------------------------------------------------


class OrderStatus(enum.Enum):
    CREATED = "CREATED"
    PAYMENT_PENDING = "PAYMENT_PENDING"
    PAID = "PAID"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    OrderStatus.CREATED: (OrderStatus.PAYMENT_PENDING, OrderStatus.CANCELLED),
    OrderStatus.PAYMENT_PENDING: (OrderStatus.PAID, OrderStatus.FAILED, OrderStatus.CANCELLED),
    OrderStatus.PAID: (OrderStatus.FULFILLED, OrderStatus.REFUNDED),
}

# States in which the order's units sit in `inventory.reserved`.
HOLDS_RESERVATION = frozenset({OrderStatus.CREATED, OrderStatus.PAYMENT_PENDING})


def can_transition(from_status: OrderStatus, to_status: OrderStatus) -> bool:
    return to_status in TRANSITIONS.get(from_status, ())


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int
    quantity: int
    unit_price: Money  # the price at checkout time

    @property
    def total(self) -> Money:
        return self.unit_price * self.quantity


class RefundStatus(enum.Enum):
    REQUESTED = "REQUESTED"  # an admin asked for it; the provider call is under way
    REQUIRED = "REQUIRED"    # money arrived for an order we will not ship: it must go back
    SUCCEEDED = "SUCCEEDED"  # the provider accepted the refund


@dataclass(frozen=True, slots=True)
class OwedRefund:
    """Money we must send back on our own: the whole of one captured intent.

    Recorded in the transaction that learns of it (a payment for an order we will not ship,
    a second payment for one order, a capture that disagrees with the order), then refunded;
    a failing refund is retried with backoff until the provider accepts it.
    """

    order_id: int
    intent_id: str
    amount: Money
    reason: str
    attempts: int = 0


@dataclass
class Payment:
    """What we know of the order's PaymentIntent at the provider, and of its refund."""

    provider: str
    intent_id: str | None = None
    client_secret: str | None = None
    status: str | None = None
    last_error: str | None = None
    refund_status: RefundStatus | None = None
    refund_id: str | None = None
    refund_requested_at: datetime | None = None


@dataclass
class Order:
    id: int
    customer_id: int
    status: OrderStatus
    lines: list[OrderLine]
    currency: str
    version: int
    created_at: datetime
    updated_at: datetime
    payment: Payment | None = None
    reserved_until: datetime | None = None
    idempotency_key: str | None = None
    cart_fingerprint: str | None = None
    # How often the sweeper failed to expire it (it backs off; see OrderRepository.postpone).
    expiry_attempts: int = 0
    # Where it ships and what shipping costs, as they were at checkout (none, 0: not shipped).
    shipping_address: Address | None = None
    shipping_cents: int = 0
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    @property
    def number(self) -> int:
        return self.id

    @property
    def subtotal(self) -> Money:
        """The lines at their prices at checkout."""
        subtotal = Money(0, self.currency)
        for line in self.lines:
            subtotal += line.total
        return subtotal

    @property
    def shipping(self) -> Money:
        return Money(self.shipping_cents, self.currency)

    @property
    def total(self) -> Money:
        """What the customer pays: subtotal + shipping."""
        return self.subtotal + self.shipping

    @property
    def next_statuses(self) -> tuple[OrderStatus, ...]:
        return TRANSITIONS.get(self.status, ())

    @property
    def holds_reservation(self) -> bool:
        return self.status in HOLDS_RESERVATION

    def visible_to(self, viewer: User | None) -> bool:
        """Owners and admins see an order; to everyone else it does not exist."""
        return viewer is not None and (viewer.is_admin or viewer.id == self.customer_id)

    def snapshot(self) -> dict[str, object]:
        """The order's state as JSON-ready data, for events and the audit log.

        The payment's client secret is left out: it is for the owner's eyes only.
        """
        payment = self.payment
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "status": self.status.value,
            "version": self.version,
            "currency": self.currency,
            "total": self.total.amount,
            "subtotal": self.subtotal.amount,
            "shipping": self.shipping_cents,
            "shipping_address": self.shipping_address.snapshot()
            if self.shipping_address else None,
            "lines": [
                {"product_id": line.product_id, "quantity": line.quantity,
                 "unit_price": line.unit_price.amount}
                for line in self.lines
            ],
            "payment": None if payment is None else {
                "provider": payment.provider, "intent_id": payment.intent_id,
                "status": payment.status, "last_error": payment.last_error,
                "refund_status": payment.refund_status.value if payment.refund_status else None,
                "refund_id": payment.refund_id,
                "refund_requested_at": payment.refund_requested_at.isoformat()
                if payment.refund_requested_at else None,
            },
            "reserved_until": self.reserved_until.isoformat() if self.reserved_until else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    # -- changes --

    def record_placed(self, *, actor: Actor) -> None:
        """Raise ORDER_CREATED; called once the order has its id."""
        self.events.append(ev.OrderPlaced(at=self.created_at, actor=actor, order=self.snapshot()))

    def transition(self, to_status: OrderStatus, *, actor: Actor, at: datetime,
                   reason: str | None = None, **payment_changes: object) -> None:
        """Move to `to_status` (one version, one event, one audit row); `payment_changes`
        set Payment attributes as part of the same change (e.g. the provider's status)."""
        if not can_transition(self.status, to_status):
            raise InvalidTransition(from_status=self.status.value, to_status=to_status.value)
        if payment_changes:
            payment = self.payment or Payment(provider="stripe")
            for name, value in payment_changes.items():
                setattr(payment, name, value)
            self.payment = payment
        previous = self.status
        self.status = to_status
        if to_status is not OrderStatus.PAYMENT_PENDING:
            self.reserved_until = None
        self._changed(at)
        self.events.append(ev.OrderStatusChanged(
            at=at, actor=actor, previous_status=previous.value, order=self.snapshot(),
            reason=reason,
        ))

    def open_payment(self, payment: Payment, *, reserved_until: datetime, actor: Actor,
                     at: datetime) -> None:
        """CREATED -> PAYMENT_PENDING with the provider's intent; stock held until then."""
        if not can_transition(self.status, OrderStatus.PAYMENT_PENDING):
            raise InvalidTransition(from_status=self.status.value,
                                    to_status=OrderStatus.PAYMENT_PENDING.value)
        self.payment = payment
        self.reserved_until = reserved_until
        self.transition(OrderStatus.PAYMENT_PENDING, actor=actor, at=at)

    def update_payment(self, *, actor: Actor, at: datetime, reason: str,
                       **changes: object) -> None:
        """Record news about the payment (provider status, refund) without a transition."""
        payment = self.payment or Payment(provider="stripe")
        before = {name: _plain(getattr(payment, name)) for name in changes}
        if all(getattr(payment, name) == value for name, value in changes.items()):
            return
        for name, value in changes.items():
            setattr(payment, name, value)
        self.payment = payment
        self._changed(at)
        self.events.append(ev.OrderPaymentUpdated(
            at=at, actor=actor, order=self.snapshot(), before=before, reason=reason,
        ))

    def _changed(self, at: datetime) -> None:
        self.version += 1
        self.updated_at = at


def order_from_snapshot(data: dict[str, Any]) -> Order:
    """The order an event's snapshot describes (the inverse of Order.snapshot())."""
    currency = str(data["currency"])
    payment_data = data.get("payment")
    payment = None
    if payment_data:
        refund_status = payment_data.get("refund_status")
        payment = Payment(provider=payment_data["provider"], intent_id=payment_data["intent_id"],
                          status=payment_data.get("status"),
                          last_error=payment_data.get("last_error"),
                          refund_status=RefundStatus(refund_status) if refund_status else None,
                          refund_id=payment_data.get("refund_id"))
    reserved_until = data.get("reserved_until")
    address = data.get("shipping_address")
    return Order(
        id=int(data["id"]), customer_id=int(data["customer_id"]),
        status=OrderStatus(data["status"]),
        lines=[OrderLine(int(line["product_id"]), int(line["quantity"]),
                         Money(int(line["unit_price"]), currency)) for line in data["lines"]],
        currency=currency, version=int(data["version"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        payment=payment,
        reserved_until=datetime.fromisoformat(reserved_until) if reserved_until else None,
        # Events from before shipping carry neither: no address, shipping 0.
        shipping_address=Address.from_snapshot(address) if address else None,
        shipping_cents=int(data.get("shipping") or 0),
    )


def _plain(value: object) -> object:
    """JSON-ready form of a payment attribute (for the audit log's `before`)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value
