"""What the use cases need from the outside world, as Protocols.

`db/` implements the unit of work and the repositories; `adapters/` implement the payment
gateway, the event publisher, the mailer and the clock. The read store (the queries behind
the API) is in `read_ports.py`; the accounts' passwords, tokens and throttle in
`auth_ports.py`; what only the API side (resolvers/) calls, and no use case, in
`ports_api.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from ordergraph.domain.events import DomainEvent
from ordergraph.domain.mail import QueuedMail
from ordergraph.domain.model import (
    Money,
    Order,
    OwedRefund,
    Payment,
    Product,
    Stock,
    User,
)
from ordergraph.domain.shipping import Address


class RetryableConflict(Exception):
    """The database refused the transaction in a way that running it again can fix.

    Serialization failures (40001), deadlocks (40P01), and a concurrent transaction that
    claimed the same unique key first (e.g. a checkout idempotency key).
    """


# ---- write side -------------------------------------------------------------------------


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert and set `user.id`; RetryableConflict if the email was just taken."""
        ...
    async def get(self, user_id: int, *, for_update: bool = False) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...
    async def get_for_checkout(self, user_id: int, *, idempotency_key: str | None,
                               for_update: bool) -> tuple[User | None, int | None]:
        """The customer and the id of their order with this idempotency key (None if there
        is none, or no key), read together."""
        ...
    async def save(self, user: User) -> None: ...


class ProductRepository(Protocol):
    async def add(self, product: Product) -> None:
        """Insert and set `product.id`; RetryableConflict if the SKU was just taken."""
        ...
    async def get(self, product_id: int, *, for_update: bool = False) -> Product | None: ...
    async def get_by_sku(self, sku: str) -> Product | None: ...
    async def get_many(self, product_ids: Sequence[int]) -> dict[int, Product]: ...
    async def save(self, product: Product) -> None: ...


class InventoryRepository(Protocol):
    async def add(self, stock: Stock) -> None: ...
    async def lock(self, product_ids: Sequence[int], *,
                   planned: Mapping[int, tuple[int, int]] | None = None,
                   at: datetime | None = None) -> dict[int, Stock]:
        """SELECT ... FOR UPDATE the rows, always in product-id order (no deadlocks), as
        they are under the lock. `planned`: the (available, reserved) deltas the caller is
        about to apply at `at`; a repository may write them in the same statement (where
        neither level goes negative), and save() then writes only what differs. With a plan,
        save() every stock returned or roll back: the plan may already be written."""
        ...
    async def save(self, stocks: Sequence[Stock]) -> None: ...


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None:
        """Insert the order and its lines and set `order.id`; RetryableConflict if a
        concurrent checkout just used the same idempotency key."""
        ...
    async def get(self, order_id: int, *, for_update: bool = False) -> Order | None: ...
    def attach(self, order: Order) -> None:
        """Take an order loaded by an earlier unit of work; save() then changes it only if
        its version is still the one it was loaded with (else RetryableConflict)."""
        ...
    async def get_by_intent(self, intent_id: str, *, for_update: bool = False) -> Order | None: ...
    async def save(self, order: Order) -> None: ...
    async def lock_expired(self, *, now: datetime, limit: int) -> list[Order]:
        """CREATED/PAYMENT_PENDING orders past reserved_until and not postponed, soonest
        due first, FOR UPDATE SKIP LOCKED."""
        ...
    async def postpone_expiry(self, order_id: int, *, until: datetime) -> None:
        """The sweeper could not expire it: count the attempt, skip it until `until`."""
        ...
    async def open_unpaid(self, customer_id: int) -> tuple[int, int]:
        """(orders, units) the customer holds in CREATED/PAYMENT_PENDING orders."""
        ...
    async def stale_refund_requests(self, *, before: datetime, limit: int) -> list[Order]:
        """Orders whose admin refund was requested before `before` and never answered."""
        ...


class OwedRefundRepository(Protocol):
    async def owe(self, refund: OwedRefund, *, at: datetime) -> bool:
        """Record the debt (once per intent, due now); False if it was known."""
        ...
    async def claim(self, intent_id: str, *, now: datetime,
                    retry_at: Callable[[int], datetime]) -> OwedRefund | None:
        """The debt, if still owed and due, with its next attempt moved to
        `retry_at(attempts)`; None if paid, not due, or being claimed by someone else."""
        ...
    async def due(self, *, now: datetime, limit: int) -> list[str]:
        """Intent ids of debts due now, longest waiting first."""
        ...
    async def settled(self, intent_id: str, *, refund_id: str, at: datetime) -> None: ...
    async def failed(self, intent_id: str, *, error: str, at: datetime) -> None: ...


class AddressBook(Protocol):
    """Customers' default shipping addresses."""

    async def get_default(self, user_id: int) -> Address | None: ...
    async def set_default(self, user_id: int, address: Address | None, *,
                          at: datetime) -> None:
        """Keep `address` as the user's default (None forgets it)."""
        ...


class WebhookEventRepository(Protocol):
    async def claim(self, event_id: str, *, event_type: str, at: datetime) -> bool:
        """Record the event id; False if it was already processed."""
        ...


class OutboxRepository(Protocol):
    """Email waiting to be sent. The unit of work writes the rows (from the events, at
    commit); the sender claims, sends and settles them."""

    async def claim(self, *, now: datetime, limit: int,
                    retry_at: Callable[[int], datetime]) -> list[QueuedMail]:
        """Due rows, oldest first, taken FOR UPDATE SKIP LOCKED and leased: each one's next
        attempt moves to `retry_at(attempts)`, so no other sender takes it meanwhile."""
        ...
    async def sent(self, mail_id: int, *, attempts: int, at: datetime) -> None: ...
    async def failed(self, mail_id: int, *, attempts: int, error: str, at: datetime,
                     give_up: bool) -> None: ...


class PasswordResetRepository(Protocol):
    async def add(self, *, user_id: int, token_hash: str, created_at: datetime,
                  expires_at: datetime) -> None: ...
    async def usable(self, token_hash: str, *, now: datetime) -> bool:
        """Whether the token is known, unused and unexpired (a read; `use` decides)."""
        ...
    async def use(self, token_hash: str, *, now: datetime) -> int | None:
        """Mark the token used if it is unused and unexpired: the user id it was for, or
        None (unknown, used or expired). Of two racing calls exactly one gets the id."""
        ...
    async def revoke_all(self, user_id: int, *, now: datetime) -> None:
        """Every other unused token of the user stops working."""
        ...


class UnitOfWork(Protocol):
    """One database transaction. Leaving the block without `commit()` rolls back."""

    users: UserRepository
    products: ProductRepository
    inventory: InventoryRepository
    orders: OrderRepository
    owed_refunds: OwedRefundRepository
    webhook_events: WebhookEventRepository
    addresses: AddressBook
    outbox: OutboxRepository
    password_resets: PasswordResetRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...
    async def commit(self) -> None:
        """Audit the collected events, commit, then publish the events."""
        ...


# ---- the audit log, read back -----------------------------------------------------------


# ---- the outside world ------------------------------------------------------------------


class PaymentState(enum.Enum):
    """Where a payment stands at its provider, in the domain's words."""

    PENDING = "pending"              # waiting for a payment method (nothing new)
    ACTION_REQUIRED = "action_required"  # the customer must act (e.g. 3-D Secure)
    PROCESSING = "processing"        # in flight
    SUCCEEDED = "succeeded"          # the money is taken
    FAILED = "failed"                # the last attempt failed (e.g. declined)
    CANCELED = "canceled"            # closed: it can no longer be paid


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """The provider's view of a payment: `state` in the domain's words (what the use cases
    match on), `status` in the provider's own (recorded and shown, never compared)."""

    id: str
    status: str  # the provider's word, e.g. Stripe's requires_action, succeeded, canceled
    amount: int
    currency: str
    client_secret: str | None = None
    last_error: str | None = None
    decline_code: str | None = None
    order_id: int | None = None  # from the intent's metadata
    state: PaymentState = PaymentState.PENDING  # the gateway reads its provider's status
    provider: str = ""  # the gateway's provider name, e.g. "stripe"
    # Money actually captured and refunded so far, when the gateway read them (None: unknown).
    amount_received: int | None = None
    amount_refunded: int | None = None


class PaymentGateway(Protocol):
    provider: str

    async def create_intent(self, *, order_id: int, amount: Money, idempotency_key: str,
                            shipping: Address | None = None,
                            receipt_email: str | None = None) -> PaymentIntent:
        """Open a payment of `amount`; `shipping` and `receipt_email` go to the provider
        with it (where the goods go, where the provider sends its receipt)."""
        ...
    async def retrieve_intent(self, intent_id: str) -> PaymentIntent: ...
    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent: ...
    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent: ...
    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        """Refund the intent's charge in full; returns the refund id. Refunds the provider
        already holds count: only what they leave of the capture is refunded, and the call
        returns only once the provider's refunds cover the whole captured amount."""
        ...


class Gateways(PaymentGateway, Protocol):
    """The payment gateways by provider name (ordergraph/wiring_payments.py lists them).
    Itself the default gateway, where new checkouts open their payments; a payment that
    exists is acted on through its own provider's."""

    def for_provider(self, provider: str) -> PaymentGateway:
        """The gateway of that name; raises PaymentFailed (a provider error) if none."""
        ...
    def for_payment(self, payment: Payment | None) -> PaymentGateway:
        """The payment's provider's gateway; the default one for no payment."""
        ...


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[DomainEvent]) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class Mailer(Protocol):
    async def send(self, mail: QueuedMail) -> None:
        """Render and hand the message to the mail server; raises on any failure."""
        ...
