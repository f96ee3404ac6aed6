"""The order state machine: every (from, to) pair."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from ordergraph.domain.errors import InvalidTransition
from ordergraph.domain.events import OrderStatusChanged
from ordergraph.domain.model import (
    SYSTEM,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    can_transition,
)

S = OrderStatus
ALLOWED = {
    (S.CREATED, S.PAYMENT_PENDING), (S.CREATED, S.CANCELLED),
    (S.PAYMENT_PENDING, S.PAID), (S.PAYMENT_PENDING, S.FAILED),
    (S.PAYMENT_PENDING, S.CANCELLED),
    (S.PAID, S.FULFILLED), (S.PAID, S.REFUNDED),
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def order_in(status: OrderStatus) -> Order:
    return Order(id=7, customer_id=3, status=status,
                 lines=[OrderLine(1, 2, Money(500, "usd"))], currency="usd", version=4,
                 created_at=NOW, updated_at=NOW)


@pytest.mark.parametrize(("from_status", "to_status"), list(product(S, S)),
                         ids=lambda s: s.value)
def test_every_pair(from_status: OrderStatus, to_status: OrderStatus) -> None:
    order = order_in(from_status)
    if (from_status, to_status) in ALLOWED:
        order.transition(to_status, actor=SYSTEM, at=NOW)
        assert order.status is to_status
        assert order.version == 5
        (event,) = order.events
        assert isinstance(event, OrderStatusChanged)
        assert (event.previous_status, event.status) == (from_status.value, to_status.value)
        assert event.type == f"ORDER_{to_status.value}"
        assert [entry.action for entry in event.audit_entries()] == ["ORDER_STATUS_CHANGED"]
    else:
        with pytest.raises(InvalidTransition) as refused:
            order.transition(to_status, actor=SYSTEM, at=NOW)
        assert refused.value.code == "INVALID_TRANSITION"
        assert (refused.value.from_status, refused.value.to_status) == \
            (from_status.value, to_status.value)
        assert order.status is from_status
        assert order.version == 4
        assert order.events == []
    assert can_transition(from_status, to_status) == ((from_status, to_status) in ALLOWED)


def test_next_statuses_follow_the_table() -> None:
    for status in S:
        assert {(status, nxt) for nxt in order_in(status).next_statuses} == \
            {pair for pair in ALLOWED if pair[0] is status}


def test_open_payment_holds_stock_until_and_leaving_pending_clears_it() -> None:
    order = order_in(S.CREATED)
    order.open_payment(Payment(provider="stripe", intent_id="pi_1", client_secret="s"),
                       reserved_until=NOW, actor=SYSTEM, at=NOW)
    assert order.reserved_until == NOW
    assert order.status is S.PAYMENT_PENDING
    order.transition(S.PAID, actor=SYSTEM, at=NOW)
    assert order.reserved_until is None


def test_snapshots_leave_out_the_client_secret() -> None:
    order = order_in(S.CREATED)
    order.open_payment(Payment(provider="stripe", intent_id="pi_1", client_secret="secret!"),
                       reserved_until=NOW, actor=SYSTEM, at=NOW)
    assert "secret!" not in repr(order.snapshot())
    assert "secret!" not in repr([e.audit_entries() for e in order.events])


def test_a_first_payment_names_its_provider_and_a_later_change_keeps_it() -> None:
    order = order_in(S.CANCELLED)
    with pytest.raises(ValueError, match="provider"):
        order.update_payment(actor=SYSTEM, at=NOW, reason="news", last_error="late")
    assert order.payment is None
    assert (order.version, order.events) == (4, [])

    order.update_payment(actor=SYSTEM, at=NOW, reason="news", provider="acme",
                         intent_id="pi_1", last_error="late")
    assert order.payment == Payment(provider="acme", intent_id="pi_1", last_error="late")
    assert "provider" not in order.events[-1].before  # type: ignore[attr-defined]

    order.update_payment(actor=SYSTEM, at=NOW, reason="news", provider="other",
                         last_error="later")
    assert order.payment is not None
    assert order.payment.provider == "acme"  # a payment's provider never changes
