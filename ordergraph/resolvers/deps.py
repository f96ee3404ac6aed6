"""What the resolvers call: the app's dependencies, held by their ports (the composition
root, ordergraph/wiring.py, builds them from the settings), and the per-request loaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from ordergraph.domain.auth_ports import PasswordHasher, RateLimiter, TokenIssuer
from ordergraph.domain.model import Product, Stock, User
from ordergraph.domain.ports import Clock, Gateways, Mailer, UnitOfWork
from ordergraph.domain.ports_api import LiveFeed, LocalMailbox, Metrics, NullMetrics
from ordergraph.domain.read_ports import AuditRecord, ReadStore
from ordergraph.domain.services.checkout import DEFAULT_PROVIDER_DEADLINE, CheckoutLimits
from ordergraph.domain.shipping import ShippingRates
from ordergraph.resolvers.live_access import RoleChanges, SubscriptionSlots

K = TypeVar("K", contravariant=True)
V = TypeVar("V", covariant=True)


class Loader(Protocol, Generic[K, V]):
    """A per-request batching loader (Strawberry's DataLoader fits)."""

    def load(self, key: K) -> Awaitable[V]: ...
    def load_many(self, keys: Sequence[K]) -> Awaitable[list[V]]: ...
    def prime_many(self, data: Mapping[K, V]) -> None: ...


@dataclass
class Loaders:
    product: Loader[int, Product | None]
    stock: Loader[int, Stock | None]
    user: Loader[int, User | None]
    order_history: Loader[str, list[AuditRecord]]


@dataclass(frozen=True)
class PaymentSettings:
    provider: str
    mode: str  # "stripe" or "local"
    publishable_key: str | None
    stripe_js_url: str
    webhook_secret: str | None


@dataclass
class Deps:
    """Everything the resolvers (and the web routes) call, built once by ordergraph/wiring.py."""

    uow: Callable[[], UnitOfWork]
    reader: ReadStore
    gateway: Gateways  # by provider name; itself the default gateway (new checkouts)
    clock: Clock
    passwords: PasswordHasher
    tokens: TokenIssuer
    reservation_ttl: timedelta
    currency: str
    payment: PaymentSettings
    make_loaders: Callable[[], Loaders]
    live: LiveFeed
    metrics: Metrics = field(default_factory=NullMetrics)
    rate_limiter: RateLimiter | None = None
    checkout_limits: CheckoutLimits = field(default_factory=CheckoutLimits)
    payment_provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE
    shipping: ShippingRates = field(default_factory=ShippingRates)
    # Namespaces what we store at the payment provider; None until the database gave it.
    installation_id: str | None = ""
    role_changes: RoleChanges = field(default_factory=RoleChanges)
    subscription_slots: SubscriptionSlots = field(default_factory=SubscriptionSlots)
    extras: dict[str, Any] = field(default_factory=dict)
    # Customer email: the outbox's sender, and in local mail mode the sink it sends to.
    mailer: Mailer | None = None
    local_mailbox: LocalMailbox | None = None
