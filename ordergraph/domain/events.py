"""Things that happened, in the past tense.

Aggregates append these as they change. The unit of work writes each event's audit entries
(and stock movements) in the same transaction, and hands the events to the EventPublisher
only after commit. Payloads are JSON-ready snapshots, so a subscriber needs no query to see
the changed state.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ordergraph.domain.actors import Actor


def new_event_id() -> str:
    return uuid.uuid4().hex


# Events from several aggregates of one transaction are audited and published in the order
# they were raised, which this process-wide counter records.
_sequence = itertools.count()


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An audit-log row before it has an id: who did what to which entity, before and after."""

    at: datetime
    actor: Actor
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    at: datetime
    actor: Actor
    event_id: str = field(default_factory=new_event_id)
    sequence: int = field(default_factory=lambda: next(_sequence), repr=False, compare=False)

    @property
    def type(self) -> str:
        raise NotImplementedError

    def audit_entries(self) -> list[AuditDraft]:
        return []

    def _audit(self, action: str, entity_type: str, entity_id: object,
               before: dict[str, Any] | None, after: dict[str, Any] | None) -> AuditDraft:
        return AuditDraft(at=self.at, actor=self.actor, action=action, entity_type=entity_type,
                          entity_id=str(entity_id), before=before, after=after)


# ---- orders -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OrderEvent(DomainEvent):
    order: dict[str, Any]  # Order.snapshot() after the change

    @property
    def order_id(self) -> int:
        return int(self.order["id"])

    @property
    def customer_id(self) -> int:
        return int(self.order["customer_id"])

    @property
    def status(self) -> str:
        return str(self.order["status"])


@dataclass(frozen=True, kw_only=True)
class OrderCreated(OrderEvent):
    @property
    def type(self) -> str:
        return "ORDER_CREATED"

    def audit_entries(self) -> list[AuditDraft]:
        return [self._audit("ORDER_CREATED", "ORDER", self.order_id, None, self.order)]


@dataclass(frozen=True, kw_only=True)
class OrderStatusChanged(OrderEvent):
    previous_status: str
    reason: str | None = None

    @property
    def type(self) -> str:
        return f"ORDER_{self.status}"

    def audit_entries(self) -> list[AuditDraft]:
        after: dict[str, Any] = {"status": self.status, "version": self.order["version"]}
        if self.reason:
            after["reason"] = self.reason
        payment = self.order["payment"]
        if self.status == "PAYMENT_PENDING":
            after["payment"] = payment
            after["reserved_until"] = self.order["reserved_until"]
        elif payment is not None:
            after["payment_status"] = payment["status"]
            if payment.get("refund_status"):
                after["refund_status"] = payment["refund_status"]
        before = {"status": self.previous_status, "version": int(self.order["version"]) - 1}
        return [self._audit("ORDER_STATUS_CHANGED", "ORDER", self.order_id, before, after)]


@dataclass(frozen=True, kw_only=True)
class OrderPaymentUpdated(OrderEvent):
    """The provider told us something that does not move the order (e.g. processing)."""

    before: dict[str, Any]
    reason: str

    @property
    def type(self) -> str:
        return "ORDER_PAYMENT_UPDATED"

    def audit_entries(self) -> list[AuditDraft]:
        payment = self.order["payment"] or {}
        after = {key: payment.get(key) for key in self.before} | {"reason": self.reason}
        return [self._audit("ORDER_PAYMENT_UPDATED", "ORDER", self.order_id, self.before, after)]


# ---- inventory --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StockChanged(DomainEvent):
    product_id: int
    reason: str  # a StockReason value
    delta_available: int
    delta_reserved: int
    before: dict[str, int]
    after: dict[str, int]
    order_id: int | None = None
    note: str | None = None

    @property
    def type(self) -> str:
        return "STOCK_CHANGED"

    def audit_entries(self) -> list[AuditDraft]:
        after: dict[str, Any] = dict(self.after)
        if self.order_id is not None:
            after["order_id"] = self.order_id
        if self.note:
            after["note"] = self.note
        return [self._audit(f"STOCK_{self.reason}", "INVENTORY", self.product_id,
                            dict(self.before), after)]


# ---- catalog ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProductCreated(DomainEvent):
    product: dict[str, Any]

    @property
    def type(self) -> str:
        return "PRODUCT_CREATED"

    def audit_entries(self) -> list[AuditDraft]:
        return [self._audit("PRODUCT_CREATED", "PRODUCT", self.product["id"], None, self.product)]


@dataclass(frozen=True, kw_only=True)
class ProductUpdated(DomainEvent):
    product_id: int
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def type(self) -> str:
        return "PRODUCT_UPDATED"

    def audit_entries(self) -> list[AuditDraft]:
        changed = [key for key in self.after if self.after[key] != self.before.get(key)]
        return [self._audit(
            "PRODUCT_UPDATED", "PRODUCT", self.product_id,
            {key: self.before.get(key) for key in changed},
            {key: self.after[key] for key in changed},
        )]


# ---- users ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UserRegistered(DomainEvent):
    user_id: int
    email: str
    role: str

    @property
    def type(self) -> str:
        return "USER_REGISTERED"

    def audit_entries(self) -> list[AuditDraft]:
        return [self._audit("USER_REGISTERED", "USER", self.user_id, None,
                            {"email": self.email, "role": self.role})]


@dataclass(frozen=True, kw_only=True)
class UserRoleChanged(DomainEvent):
    user_id: int
    before: str
    after: str

    @property
    def type(self) -> str:
        return "USER_ROLE_CHANGED"

    def audit_entries(self) -> list[AuditDraft]:
        return [self._audit("USER_ROLE_CHANGED", "USER", self.user_id, {"role": self.before},
                            {"role": self.after})]


@dataclass(frozen=True, kw_only=True)
class PasswordResetRequested(DomainEvent):
    """A reset link was made for the account; `token` is the raw token for its email only
    (the database keeps its hash; the audit row never sees it)."""

    user_id: int
    token: str = field(repr=False)
    expires_at: datetime
    requested_from: str | None = None  # the client's address

    @property
    def type(self) -> str:
        return "USER_PASSWORD_RESET_REQUESTED"

    def audit_entries(self) -> list[AuditDraft]:
        return [self._audit("USER_PASSWORD_RESET_REQUESTED", "USER", self.user_id, None,
                            {"expires_at": self.expires_at.isoformat(),
                             "requested_from": self.requested_from})]


@dataclass(frozen=True, kw_only=True)
class PasswordReset(DomainEvent):
    """The password was set from a reset link; sessions issued before it stop working."""

    user_id: int

    @property
    def type(self) -> str:
        return "USER_PASSWORD_RESET"

    def audit_entries(self) -> list[AuditDraft]:
        return [self._audit("USER_PASSWORD_RESET", "USER", self.user_id, None,
                            {"sessions_revoked_before": self.at.isoformat()})]
