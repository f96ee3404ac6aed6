"""Issue 10's invariant, read from the test database (SQL) and the emulator's own records.

Checked after every step, when nothing is in flight, and once more, strictly, at the end of
an example after a final settle (every queued webhook delivered, every order synced, the
clock past every reservation, the sweeper run): money that was owed must then be back.

1. Stock: available >= 0, reserved >= 0; available + reserved + sold = what the shop brought
   in (the model's own count of initial + set + adjusted); the stock_movements ledger sums to
   the levels; reserved = the units of CREATED/PAYMENT_PENDING orders; no order line over the
   per-line cap after duplicate lines are merged.
2. Money: every intent captured at the provider belongs to a PAID/FULFILLED order, or is
   refunded in full (mid-run also: the app has not heard yet, or owes the refund); never
   more than one refund per intent, never more than was captured; nothing refunded is
   FULFILLED; PAID/FULFILLED only with a capture of the order's amount and currency; an order
   REFUNDED was refunded at the provider. Totals: an order's subtotal is its lines at their
   prices, its total subtotal + shipping, its shipping 0 without an address and the shop's
   rate for the subtotal with one; a capture is compared with subtotal + shipping.
3. What the API answered happened: no PAYMENT_DECLINED for an intent that succeeded; a
   cancel, fulfilment, refund or payment that answered success shows in the order.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from ordergraph.domain.model import MAX_LINE_QUANTITY
from ordergraph.domain.shipping import ShippingRates
from tests.chaos.webhooks import list_all
from tests.support import psycopg_dsn

OPEN = ("CREATED", "PAYMENT_PENDING")
SETTLED = ("PAID", "FULFILLED")


@dataclass(frozen=True)
class Claim:
    """Something the API told a client, which must stay true."""

    kind: str        # declined | paid | cancelled | fulfilled | refunded
    order_id: int
    step: str        # the operation that answered, for the report

    def __str__(self) -> str:
        return f"{self.kind} (answered to {self.step})"


@dataclass
class ProviderView:
    intents: dict[str, dict[str, Any]]
    refunds: dict[str, list[dict[str, Any]]]  # charge id -> its refunds

    def refunds_of(self, intent: dict[str, Any]) -> list[dict[str, Any]]:
        charge = intent.get("latest_charge") or {}
        charge_id = charge.get("id") if isinstance(charge, dict) else charge
        return self.refunds.get(charge_id, []) if charge_id else []

    def refunded(self, intent: dict[str, Any]) -> int:
        return sum(int(r.get("amount") or 0) for r in self.refunds_of(intent))


async def provider_view(stripe: httpx.AsyncClient) -> ProviderView:
    intents = {i["id"]: i for i in await list_all(stripe, "/v1/payment_intents")}
    refunds: dict[str, list[dict[str, Any]]] = {}
    for refund in await list_all(stripe, "/v1/refunds"):
        refunds.setdefault(refund["charge"], []).append(refund)
    return ProviderView(intents, refunds)


@dataclass(frozen=True)
class OrderRow:
    id: int
    status: str
    total_cents: int
    currency: str
    intent_id: str | None
    refund_status: str | None
    subtotal_cents: int = 0
    shipping_cents: int = 0
    lines_cents: int = 0  # the sum of its lines at their unit prices
    ships: bool = False   # it has an address

    @property
    def payable(self) -> int:
        """What the customer must pay: subtotal + shipping."""
        return self.subtotal_cents + self.shipping_cents


class Db:
    """One autocommit connection to the test database, for the checks of a whole run."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(psycopg_dsn(url), autocommit=True)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.close()


def order_rows(db: Db) -> dict[int, OrderRow]:
    return {r[0]: OrderRow(int(r[0]), r[1], int(r[2]), str(r[3]).lower(), r[4], r[5],
                           int(r[6]), int(r[7]), int(r[8]), bool(r[9]))
            for r in db.rows(
                "SELECT o.id, o.status, o.total_cents, o.currency, o.payment_intent_id, "
                "o.refund_status, o.subtotal_cents, o.shipping_cents, "
                "(SELECT COALESCE(SUM(i.quantity * i.unit_price_cents), 0) FROM order_items i "
                " WHERE i.order_id = o.id), o.ship_country IS NOT NULL "
                "FROM orders o ORDER BY o.id")}


def totals_problems(orders: dict[int, OrderRow], shipping: ShippingRates | None) -> list[str]:
    """Every order's figures add up, and its shipping is what the shop charges."""
    problems = []
    for order in orders.values():
        where = f"totals: order {order.id}"
        if order.subtotal_cents != order.lines_cents:
            problems.append(f"{where} has subtotal {order.subtotal_cents} but its lines "
                            f"come to {order.lines_cents}")
        if order.total_cents != order.payable:
            problems.append(f"{where} totals {order.total_cents}, not subtotal "
                            f"{order.subtotal_cents} + shipping {order.shipping_cents}")
        expected = 0 if not order.ships or shipping is None else \
            shipping.cost_cents(order.subtotal_cents)
        if shipping is not None and order.shipping_cents != expected:
            problems.append(f"{where} ({'shipped' if order.ships else 'not shipped'}, "
                            f"subtotal {order.subtotal_cents}) pays shipping "
                            f"{order.shipping_cents}, not {expected}")
    return problems


STOCK_BY_PRODUCT = """
SELECT i.product_id, i.available, i.reserved,
       COALESCE(m.ledger_available, 0), COALESCE(m.ledger_reserved, 0),
       COALESCE(m.brought_in, 0),
       COALESCE(o.held, 0), COALESCE(o.sold, 0)
FROM inventory i
LEFT JOIN (SELECT product_id, SUM(delta_available) AS ledger_available,
                  SUM(delta_reserved) AS ledger_reserved,
                  SUM(delta_available + delta_reserved)
                      FILTER (WHERE reason IN ('INITIAL', 'SET', 'ADJUSTED')) AS brought_in
           FROM stock_movements GROUP BY product_id) m ON m.product_id = i.product_id
LEFT JOIN (SELECT it.product_id,
                  SUM(it.quantity) FILTER (WHERE o.status IN ('CREATED', 'PAYMENT_PENDING'))
                      AS held,
                  SUM(it.quantity) FILTER (WHERE o.status IN ('PAID', 'FULFILLED')) AS sold
           FROM order_items it JOIN orders o ON o.id = it.order_id
           GROUP BY it.product_id) o ON o.product_id = i.product_id
ORDER BY i.product_id
"""


def stock_problems(db: Db, brought_in: dict[int, int]) -> list[str]:
    """What tests.support.stock_invariant_violations checks, in one statement, plus the
    model's own count of what was brought in and the per-line cap."""
    problems = []
    for (product_id, available, reserved, ledger_available, ledger_reserved, ledger_in,
         held, sold) in db.rows(STOCK_BY_PRODUCT):
        where = f"stock: product {product_id}"
        if available < 0 or reserved < 0:
            problems.append(f"{where} at {available} available, {reserved} reserved")
        if (int(ledger_available), int(ledger_reserved)) != (available, reserved):
            problems.append(f"{where}: ledger ({ledger_available}, {ledger_reserved}) != "
                            f"levels ({available}, {reserved})")
        if int(held) != reserved:
            problems.append(f"{where}: reserved {reserved} != {held} held by open orders")
        if available + reserved + int(sold) != int(ledger_in):
            problems.append(f"{where}: {available} + {reserved} + {sold} sold != "
                            f"{ledger_in} brought in by the ledger")
        expected = brought_in.get(product_id)
        if expected is not None and available + reserved + int(sold) != expected:
            problems.append(f"{where}: {available} + {reserved} + {sold} sold != {expected} "
                            "brought in (initial + set + adjusted, as the API answered)")
    for order_id, product_id, quantity in db.rows(
            "SELECT order_id, product_id, SUM(quantity) FROM order_items "
            "GROUP BY order_id, product_id HAVING SUM(quantity) > %s", (MAX_LINE_QUANTITY,)):
        problems.append(f"stock: order {order_id} holds {quantity} units of product "
                        f"{product_id}, over the {MAX_LINE_QUANTITY} a line may hold")
    return problems


def captured(intent: dict[str, Any]) -> tuple[int, str]:
    """What the provider took: its charge's amount and currency (the intent's own fields
    can be edited afterwards)."""
    charge = intent.get("latest_charge")
    source = charge if isinstance(charge, dict) else intent
    return int(source.get("amount") or 0), str(source.get("currency") or "").lower()


def _order_of(intent: dict[str, Any], by_intent: dict[str, OrderRow],
              by_id: dict[int, OrderRow]) -> OrderRow | None:
    if intent["id"] in by_intent:
        return by_intent[intent["id"]]
    raw = str((intent.get("metadata") or {}).get("order_id") or "")
    return by_id.get(int(raw)) if raw.isdigit() else None


def money_problems(orders: dict[int, OrderRow], provider: ProviderView, *,
                   final: bool, foreign: AbstractSet[str] = frozenset()) -> list[str]:
    problems: list[str] = []
    by_intent = {o.intent_id: o for o in orders.values() if o.intent_id}

    for intent in provider.intents.values():
        refunds = provider.refunds_of(intent)
        if intent["id"] in foreign:  # another shop's money: not ours to keep or refund
            if refunds:
                problems.append(f"money: we refunded another shop's payment {intent['id']}")
            if intent["id"] in by_intent:
                problems.append(f"money: order {by_intent[intent['id']].id} adopted another "
                                f"shop's payment {intent['id']}")
            continue
        refunded = provider.refunded(intent)
        amount = int(intent.get("amount") or 0)
        order = _order_of(intent, by_intent, orders)
        where = f"intent {intent['id']} (order {order.id if order else '?'})"
        if len(refunds) > 1:
            problems.append(f"money: {where} refunded {len(refunds)} times: "
                            f"{[r['id'] for r in refunds]}")
        if refunded > amount:
            problems.append(f"money: {where} refunded {refunded} of {amount} captured")
        if intent.get("status") != "succeeded":
            continue
        stored = order is not None and order.intent_id == intent["id"]
        if stored and order is not None and order.status in SETTLED:
            if refunded and order.status == "FULFILLED":
                problems.append(f"money: order {order.id} is FULFILLED but its payment "
                                f"{intent['id']} was refunded at the provider")
            elif refunded and final:
                problems.append(f"money: order {order.id} is PAID but its payment "
                                f"{intent['id']} was refunded at the provider")
            continue
        if refunded >= amount:
            continue  # the money went back
        if final:
            state = "no order" if order is None else \
                f"order {order.id} {order.status} (refund_status {order.refund_status}" + \
                ("" if stored else f", its own intent is {order.intent_id}") + ")"
            problems.append(f"money: {intent['id']} captured {amount} "
                            f"{intent.get('currency')} and kept it for {state}")

    for order in orders.values():
        intent = provider.intents.get(order.intent_id or "")
        if order.status in SETTLED:
            if intent is None or intent.get("status") != "succeeded":
                problems.append(f"money: order {order.id} is {order.status} but its intent "
                                f"{order.intent_id} is "
                                f"{intent.get('status') if intent else 'unknown'}")
            elif captured(intent) != (order.payable, order.currency):
                problems.append(f"money: order {order.id} is {order.status} for "
                                f"{order.subtotal_cents} + {order.shipping_cents} shipping "
                                f"{order.currency} but the provider captured "
                                f"{captured(intent)}")
        if order.status == "REFUNDED" and (
                intent is None or provider.refunded(intent) < int(intent.get("amount") or 0)):
            problems.append(f"money: order {order.id} is REFUNDED but the provider shows "
                            f"{provider.refunded(intent) if intent else 0} refunded")
        if final and order.status in OPEN:
            problems.append(f"stock: order {order.id} still {order.status} (holding its "
                            "units) after every reservation expired and the sweeper ran")
        if final and order.refund_status in ("REQUIRED", "REQUESTED"):
            problems.append(f"money: order {order.id} ({order.status}) still has refund "
                            f"{order.refund_status} after the final sweep")
    return problems


EXPECTED_STATUS = {
    "paid": ("PAID", "FULFILLED", "REFUNDED"),
    "cancelled": ("CANCELLED", "REFUNDED"),
    "fulfilled": ("FULFILLED",),
    "refunded": ("REFUNDED",),
}


def claim_problems(claims: list[Claim], orders: dict[int, OrderRow],
                   provider: ProviderView) -> list[str]:
    problems = []
    for claim in claims:
        order = orders.get(claim.order_id)
        if order is None:
            problems.append(f"answers: order {claim.order_id} was {claim} but does not exist")
            continue
        if claim.kind == "declined":
            intent = provider.intents.get(order.intent_id or "")
            if intent is not None and intent.get("status") == "succeeded":
                problems.append(f"answers: order {order.id} got PAYMENT_DECLINED "
                                f"({claim.step}) but its intent {intent['id']} succeeded; "
                                f"the order is {order.status}")
            elif order.status not in ("FAILED", "CANCELLED"):
                # README: "a decline ... the order is FAILED with its stock released"
                problems.append(f"answers: order {order.id} got PAYMENT_DECLINED "
                                f"({claim.step}) but is {order.status}, not FAILED")
        elif order.status not in EXPECTED_STATUS[claim.kind]:
            problems.append(f"answers: order {order.id} was {claim} but is {order.status}")
    return problems


def owed_problems(db: Db) -> list[str]:
    """At the end: no refund still recorded as owed (the owed_refunds ledger, where the
    schema has one)."""
    if not db.rows("SELECT 1 FROM pg_tables WHERE tablename = 'owed_refunds'"):
        return []
    return [f"money: refund of {intent_id} ({amount} {currency}) for order {order_id} still "
            f"{status} after {attempts} attempts ({last_error})"
            for order_id, intent_id, amount, currency, status, attempts, last_error in db.rows(
                "SELECT order_id, intent_id, amount_cents, currency, status, attempts, "
                     "last_error FROM owed_refunds WHERE status <> 'SUCCEEDED' ORDER BY id")]


def violations(db: Db, provider: ProviderView, brought_in: dict[int, int],
               claims: list[Claim], *, final: bool = False,
               foreign: AbstractSet[str] = frozenset(),
               shipping: ShippingRates | None = None) -> list[str]:
    orders = order_rows(db)
    return (stock_problems(db, brought_in)
            + totals_problems(orders, shipping)
            + money_problems(orders, provider, final=final, foreign=foreign)
            + claim_problems(claims, orders, provider)
            + (owed_problems(db) if final else []))
