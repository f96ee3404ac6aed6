"""Orders: the order's states (the state machine), lines, payment, and its snapshot (the
order's shape, encoded and decoded in one place). The cart a checkout validates is in
carts.py."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ordergraph.domain import events as ev
from ordergraph.domain.actors import Actor
from ordergraph.domain.errors import InvalidTransition
from ordergraph.domain.money import Money
from ordergraph.domain.shipping import Address
from ordergraph.domain.users import User


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
        self.events.append(ev.OrderCreated(at=self.created_at, actor=actor, order=self.snapshot()))

    def transition(self, to_status: OrderStatus, *, actor: Actor, at: datetime,
                   reason: str | None = None, **payment_changes: object) -> None:
        """Move to `to_status` (one version, one event, one audit row); `payment_changes`
        set Payment attributes as part of the same change (e.g. the provider's status; an order
        without a payment yet also needs `provider=`)."""
        if not can_transition(self.status, to_status):
            raise InvalidTransition(from_status=self.status.value, to_status=to_status.value)
        if payment_changes:
            payment = self._payment(payment_changes)
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
        payment = self._payment(changes)
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

    def _payment(self, changes: dict[str, object]) -> Payment:
        """The order's payment, or a first one, which names its provider among `changes`
        (as `provider=`, taken out of them; ignored when the order has its payment)."""
        provider = changes.pop("provider", None)
        if self.payment is not None:
            return self.payment
        if not isinstance(provider, str) or not provider:
            raise ValueError(f"order {self.id}: a first payment must name its provider")
        return Payment(provider=provider)

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
        requested_at = payment_data.get("refund_requested_at")
        payment = Payment(provider=payment_data["provider"], intent_id=payment_data["intent_id"],
                          status=payment_data.get("status"),
                          last_error=payment_data.get("last_error"),
                          refund_status=RefundStatus(refund_status) if refund_status else None,
                          refund_id=payment_data.get("refund_id"),
                          refund_requested_at=datetime.fromisoformat(requested_at)
                          if requested_at else None)
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
