"""Customer email: which events send one, and what a queued message carries.

The unit of work turns the events of a transaction into outbox rows in that same transaction
(`mail_for`), so an email exists exactly when its change was committed, once per change: an
order paid by two racing finalizers makes one PAID transition, hence one email. A sender
(`services/mail.py`) delivers the rows later, outside any transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ordergraph.domain import events as ev


class MailKind(enum.Enum):
    ORDER_CONFIRMED = "ORDER_CONFIRMED"  # PAID: the confirmation
    ORDER_SHIPPED = "ORDER_SHIPPED"      # FULFILLED
    ORDER_CANCELLED = "ORDER_CANCELLED"  # cancelled or expired before payment
    ORDER_REFUNDED = "ORDER_REFUNDED"
    PASSWORD_RESET = "PASSWORD_RESET"  # noqa: S105 - a kind of email, not a secret


_ORDER_MAIL = {"PAID": MailKind.ORDER_CONFIRMED, "FULFILLED": MailKind.ORDER_SHIPPED,
               "CANCELLED": MailKind.ORDER_CANCELLED, "REFUNDED": MailKind.ORDER_REFUNDED}


@dataclass(frozen=True, slots=True)
class MailDraft:
    """A message to queue: its kind, the user it goes to, and what its template shows."""

    kind: MailKind
    user_id: int
    data: dict[str, Any]


def mail_for(event: ev.DomainEvent) -> MailDraft | None:
    """The email a committed event sends, if any."""
    if isinstance(event, ev.OrderStatusChanged):
        kind = _ORDER_MAIL.get(event.status)
        if kind is None:
            return None
        if kind is MailKind.ORDER_CANCELLED and event.previous_status == "CREATED":
            # The checkout itself failed (and said so on the spot), or it never finished:
            # the customer was never asked to pay, so there is nothing to tell them.
            return None
        return MailDraft(kind=kind, user_id=event.customer_id,
                         data={"order": event.order, "reason": event.reason,
                               "at": event.at.isoformat()})
    if isinstance(event, ev.PasswordResetRequested):
        return MailDraft(kind=MailKind.PASSWORD_RESET, user_id=event.user_id,
                         data={"token": event.token,
                               "expires_at": event.expires_at.isoformat()})
    return None


@dataclass(frozen=True, slots=True)
class QueuedMail:
    """An outbox row claimed for sending (its `attempts` includes this one)."""

    id: int
    kind: MailKind
    to: str
    data: dict[str, Any]
    attempts: int
    created_at: datetime
