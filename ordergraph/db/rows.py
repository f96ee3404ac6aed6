"""Rows to domain objects and back: one place that knows both shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ordergraph.domain.model import (
    Actor,
    ActorKind,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Product,
    RefundStatus,
    Role,
    Stock,
    User,
)
from ordergraph.domain.read_ports import AuditRecord
from ordergraph.domain.shipping import Address

Row = Mapping[str, Any]


def user_from_row(row: Row) -> User:
    return User(id=row["id"], email=row["email"], name=row["name"], role=Role(row["role"]),
                password_hash=row["password_hash"], created_at=row["created_at"],
                password_changed_at=row.get("password_changed_at"))


def product_from_row(row: Row) -> Product:
    return Product(id=row["id"], sku=row["sku"], name=row["name"],
                   description=row["description"],
                   price=Money(row["price_cents"], row["currency"]), active=row["active"],
                   created_at=row["created_at"], updated_at=row["updated_at"])


def product_values(product: Product) -> dict[str, Any]:
    return {"sku": product.sku, "name": product.name, "description": product.description,
            "price_cents": product.price.amount, "currency": product.price.currency,
            "active": product.active, "created_at": product.created_at,
            "updated_at": product.updated_at}


def stock_from_row(row: Row) -> Stock:
    return Stock(product_id=row["product_id"], available=row["available"],
                 reserved=row["reserved"], updated_at=row["updated_at"])


def line_from_row(row: Row, currency: str) -> OrderLine:
    return OrderLine(product_id=row["product_id"], quantity=row["quantity"],
                     unit_price=Money(row["unit_price_cents"], currency))


def order_from_row(row: Row, item_rows: Sequence[Row]) -> Order:
    payment = None
    if row["payment_provider"] is not None:
        refund_status = row["refund_status"]
        payment = Payment(provider=row["payment_provider"], intent_id=row["payment_intent_id"],
                          client_secret=row["payment_client_secret"],
                          status=row["payment_status"], last_error=row["payment_last_error"],
                          refund_status=RefundStatus(refund_status) if refund_status else None,
                          refund_id=row["refund_id"],
                          refund_requested_at=row["refund_requested_at"])
    return Order(
        id=row["id"], customer_id=row["customer_id"], status=OrderStatus(row["status"]),
        lines=[line_from_row(item, row["currency"]) for item in item_rows],
        currency=row["currency"], version=row["version"], created_at=row["created_at"],
        updated_at=row["updated_at"], payment=payment, reserved_until=row["reserved_until"],
        idempotency_key=row["idempotency_key"], cart_fingerprint=row["cart_fingerprint"],
        expiry_attempts=row["sweep_attempts"],
        shipping_address=address_from_row(row, "ship_"), shipping_cents=row["shipping_cents"],
    )


_ADDRESS_PARTS = ("name", "line1", "line2", "city", "postal_code", "region", "country")


def address_from_row(row: Row, prefix: str = "") -> Address | None:
    if row[f"{prefix}country"] is None:
        return None
    return Address(**{part: row[f"{prefix}{part}"] for part in _ADDRESS_PARTS})


def address_values(address: Address | None, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{part}": getattr(address, part) if address else None
            for part in _ADDRESS_PARTS}


def order_values(order: Order) -> dict[str, Any]:
    """The orders row of an order (its lines live in order_items)."""
    payment = order.payment
    return {
        "customer_id": order.customer_id, "status": order.status.value,
        "currency": order.currency, "total_cents": order.total.amount,
        "subtotal_cents": order.subtotal.amount, "shipping_cents": order.shipping_cents,
        **address_values(order.shipping_address, "ship_"),
        "version": order.version, "idempotency_key": order.idempotency_key,
        "cart_fingerprint": order.cart_fingerprint,
        "payment_provider": payment.provider if payment else None,
        "payment_intent_id": payment.intent_id if payment else None,
        "payment_client_secret": payment.client_secret if payment else None,
        "payment_status": payment.status if payment else None,
        "payment_last_error": payment.last_error if payment else None,
        "refund_status": payment.refund_status.value
        if payment and payment.refund_status else None,
        "refund_id": payment.refund_id if payment else None,
        "refund_requested_at": payment.refund_requested_at if payment else None,
        "reserved_until": order.reserved_until, "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def audit_from_row(row: Row) -> AuditRecord:
    return AuditRecord(id=row["id"], at=row["at"],
                       actor=Actor(ActorKind(row["actor_kind"]), row["actor_id"]),
                       action=row["action"], entity_type=row["entity_type"],
                       entity_id=row["entity_id"], before=row["before"], after=row["after"])
