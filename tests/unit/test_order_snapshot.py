"""The order's snapshot (events, audit rows, the live feed): Order.snapshot() and
order_from_snapshot() are each other's inverse, and every field of the order is in it or
deliberately left out."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from ordergraph.domain.model import (
    Money,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    RefundStatus,
    order_from_snapshot,
)
from ordergraph.domain.shipping import Address

NOW = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)

# Fields of Order the snapshot deliberately leaves out; each with its reason. A new field
# goes into Order.snapshot() and order_from_snapshot(), or here with a reason.
ORDER_LEFT_OUT = {
    "events",  # the transient list of changes not yet committed; not the order's state
    "idempotency_key",  # the checkout's retry key: bookkeeping of the orders table only
    "cart_fingerprint",  # checks a retried checkout asks for the same cart; table only
    "expiry_attempts",  # the sweeper's backoff counter; table only
}
# Order fields whose snapshot key is spelt differently.
ORDER_KEY = {"shipping_cents": "shipping"}
# Keys the snapshot adds that are no field: derived from the lines and shipping, for readers
# of the JSON (emails, audit rows) that do not rebuild the order.
DERIVED_KEYS = {"total", "subtotal"}

PAYMENT_LEFT_OUT = {
    "client_secret",  # for the owner's eyes only; events and audit rows go to others
}


def full_order() -> Order:
    """An order with every field set to something other than its default."""
    return Order(
        id=41, customer_id=7, status=OrderStatus.PAID,
        lines=[OrderLine(3, 2, Money(1250, "eur")), OrderLine(9, 1, Money(99, "eur"))],
        currency="eur", version=6,
        created_at=NOW - timedelta(hours=1), updated_at=NOW,
        payment=Payment(provider="stripe", intent_id="pi_123", client_secret="pi_123_secret",
                        status="succeeded", last_error="card_declined once",
                        refund_status=RefundStatus.REQUESTED, refund_id="re_456",
                        refund_requested_at=NOW - timedelta(minutes=5)),
        reserved_until=NOW + timedelta(minutes=15),
        shipping_address=Address(name="Ada Lovelace", line1="1 Main St", line2="Flat 2",
                                 city="Lyon", postal_code="69001", region="Rhône",
                                 country="FR"),
        shipping_cents=499,
        idempotency_key="key-1", cart_fingerprint="abc123", expiry_attempts=2,
    )


def without_left_out(order: Order) -> Order:
    """The order as its snapshot describes it: the fields left out at their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(Order)
                if f.name in ORDER_LEFT_OUT and f.name != "events"}
    payment = order.payment and dataclasses.replace(order.payment, client_secret=None)
    return dataclasses.replace(order, payment=payment, **defaults)


def test_a_full_order_survives_encode_then_decode() -> None:
    order = full_order()
    # Through JSON, as the audit log and the broadcast carry it.
    decoded = order_from_snapshot(json.loads(json.dumps(order.snapshot())))
    assert decoded == without_left_out(order)
    assert decoded.snapshot() == order.snapshot()


def test_a_bare_order_survives_encode_then_decode() -> None:
    order = Order(id=1, customer_id=2, status=OrderStatus.CREATED,
                  lines=[OrderLine(5, 1, Money(100, "usd"))], currency="usd", version=1,
                  created_at=NOW, updated_at=NOW)
    assert order_from_snapshot(json.loads(json.dumps(order.snapshot()))) == order


def test_the_snapshot_names_every_field_of_the_order() -> None:
    """Fails when a field is added to Order (or Payment, OrderLine, Address) and not to the
    snapshot, or not listed above as left out."""
    snapshot = full_order().snapshot()
    expected = {ORDER_KEY.get(f.name, f.name) for f in dataclasses.fields(Order)
                if f.name not in ORDER_LEFT_OUT}
    assert set(snapshot) - DERIVED_KEYS == expected

    payment = snapshot["payment"]
    assert isinstance(payment, dict)
    assert set(payment) == {f.name for f in dataclasses.fields(Payment)} - PAYMENT_LEFT_OUT

    lines = snapshot["lines"]
    assert isinstance(lines, list)
    assert set(lines[0]) == {f.name for f in dataclasses.fields(OrderLine)}

    address = snapshot["shipping_address"]
    assert isinstance(address, dict)
    assert set(address) == {f.name for f in dataclasses.fields(Address)}


def test_every_field_kept_by_the_snapshot_is_decoded() -> None:
    """Field by field, so a failure names the one the decoder drops."""
    order = without_left_out(full_order())
    decoded = order_from_snapshot(order.snapshot())
    for f in dataclasses.fields(Payment):
        if f.name not in PAYMENT_LEFT_OUT:
            assert getattr(decoded.payment, f.name) == getattr(order.payment, f.name), f.name
    for f in dataclasses.fields(Order):
        if f.name not in ORDER_LEFT_OUT:
            assert getattr(decoded, f.name) == getattr(order, f.name), f.name
