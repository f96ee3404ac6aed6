"""The raw-driver ceiling: the app's checkout from Python with psycopg alone.

`--variant app` (the default): the whole checkout as the app's unit of work sends it, statement
for statement and round trip for round trip: transaction 1 (the customer's row, the viewer,
with the idempotency key's order; the products; the order with its lines in one INSERT; the
stock locked and moved in one statement; the audit rows with the stock movements in one
INSERT) and transaction 2 (the payment on the order, its audit row). No SQLAlchemy, no GraphQL, no
HTTP: what Python + psycopg can do, to set our own cost against.

`--variant lock_first`: transaction 1 alone as the app ran it before issue 12 (and as
`sql/checkout_lock_first.sql` still does): SELECT ... FOR UPDATE, then the UPDATE, the rows
of a table as psycopg's executemany pipeline. `--variant update_last`: the lock-last variant.

`python -m bench.raw --database NAME --cart hot|uniform --clients 32 --duration 4` prints one
JSON result (a process of its own, one asyncio loop with one connection per client, as the
app's single worker has).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.common import CATALOG_SIZE, HOT_PRODUCT, USERS, dsn_for, latency_summary

# The customer (the request's viewer) with the order of the idempotency key, as the app's
# transaction 1 starts (db/repositories.py: SqlUserRepository.get_for_checkout).
CUSTOMER_AND_KEY = ("SELECT u.*, (SELECT o.id FROM orders o WHERE o.customer_id = u.id "
                    "AND o.idempotency_key = %s) AS keyed_order_id FROM users u WHERE u.id = %s")
PRODUCTS = "SELECT * FROM products WHERE id = ANY(%s)"
LOCK = ("SELECT * FROM inventory WHERE product_id = ANY(%s) ORDER BY product_id FOR UPDATE")
ORDER = ("INSERT INTO orders (customer_id, status, currency, total_cents, subtotal_cents, "
         "version, idempotency_key, cart_fingerprint, created_at, updated_at) "
         "VALUES (%s, 'CREATED', %s, %s, %s, 1, %s, %s, %s, %s) RETURNING id")
ITEM = ("INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
        "VALUES (%s, %s, %s, %s)")
MOVE = ("UPDATE inventory SET available = available + %s, reserved = reserved + %s, "
        "updated_at = %s WHERE product_id = %s")
MOVE_IF_AVAILABLE = ("UPDATE inventory SET available = available - %s, "
                     "reserved = reserved + %s, updated_at = %s "
                     "WHERE product_id = %s AND available >= %s "
                     "RETURNING product_id, available, reserved")
AUDIT = ("INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, "
         "before, after) VALUES (%s, 'USER', %s, %s, %s, %s, %s, %s)")
LOCK_AND_MOVE = """
WITH locked AS (
    SELECT product_id, available, reserved, updated_at FROM inventory
    WHERE product_id = ANY(%(ids)s::bigint[]) ORDER BY product_id FOR UPDATE
), planned AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(d_available)s::integer[],
                         %(d_reserved)s::integer[]) AS p(product_id, d_available, d_reserved)
), moved AS (
    UPDATE inventory SET available = inventory.available + planned.d_available,
                         reserved = inventory.reserved + planned.d_reserved, updated_at = %(at)s
    FROM locked JOIN planned USING (product_id)
    WHERE inventory.product_id = locked.product_id
      AND locked.available + planned.d_available >= 0
      AND locked.reserved + planned.d_reserved >= 0
    RETURNING inventory.product_id
)
SELECT locked.product_id, locked.available, locked.reserved, locked.updated_at,
       moved.product_id IS NOT NULL AS moved
FROM locked LEFT JOIN moved USING (product_id) ORDER BY locked.product_id"""
ORDER_WITH_LINES = """
WITH new_order AS (
    INSERT INTO orders (customer_id, status, currency, total_cents, subtotal_cents, version,
                        idempotency_key, cart_fingerprint, created_at, updated_at)
    VALUES (%(customer)s, 'CREATED', 'usd', %(total)s, %(total)s, 1, %(key)s,
            %(fingerprint)s, %(now)s, %(now)s) RETURNING id)
INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
SELECT new_order.id, line.product_id, line.quantity, line.unit_price_cents
FROM new_order JOIN unnest(%(pids)s::bigint[], %(qtys)s::integer[], %(prices)s::integer[])
    AS line(product_id, quantity, unit_price_cents) ON true
RETURNING order_id"""
OPEN_PAYMENT = ("UPDATE orders SET status = 'PAYMENT_PENDING', version = %s, "
                "payment_provider = 'null', payment_intent_id = %s, "
                "payment_client_secret = %s, payment_status = 'requires_payment_method', "
                "payment_last_error = NULL, refund_status = NULL, refund_id = NULL, "
                "refund_requested_at = NULL, reserved_until = %s, updated_at = %s "
                "WHERE id = %s AND version = %s")
MOVEMENT = ("INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, "
            "order_id, actor_kind, actor_id, note, at) "
            "VALUES (%s, %s, %s, 'RESERVED', %s, 'USER', %s, NULL, %s)")

# The app's audit rows with their stock movements (ordergraph/db/uow.py): one statement of
# one array per column, whatever the number of rows.
AUDIT_AND_MOVEMENTS = """
WITH audit_rows AS (
    INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before,
                           after)
    SELECT at, actor_kind, actor_id, action, entity_type, entity_id,
           coalesce(before, 'null'::jsonb), coalesce(after, 'null'::jsonb)
    FROM jsonb_to_recordset(%(audit)s::jsonb) AS entry(
        at timestamptz, actor_kind text, actor_id bigint, action text, entity_type text,
        entity_id text, before jsonb, after jsonb))
INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, order_id,
                             actor_kind, actor_id, note, at)
SELECT product_id, delta_available, delta_reserved, reason, order_id, actor_kind, actor_id,
       note, at
FROM jsonb_to_recordset(%(movements)s::jsonb) AS entry(
    product_id bigint, delta_available integer, delta_reserved integer, reason text,
    order_id bigint, actor_kind text, actor_id bigint, note text, at timestamptz)"""


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, separators=(",", ":"),
                      default=lambda value: value.isoformat())


def _audit_and_movement_rows(audit: list[tuple[Any, ...]], movements: list[tuple[Any, ...]]
                             ) -> dict[str, str]:
    """AUDIT_AND_MOVEMENTS' two JSON documents, as the app's unit of work writes them
    (ordergraph/db/uow.py): audit rows (at, actor, action, entity type and id, before, after)
    by a user, and RESERVED movements (product, deltas, order, actor, at)."""
    return {
        "audit": _json_rows([
            {"at": at, "actor_kind": "USER", "actor_id": actor, "action": action,
             "entity_type": entity_type, "entity_id": entity_id, "before": before,
             "after": after}
            for at, actor, action, entity_type, entity_id, before, after in audit]),
        "movements": _json_rows([
            {"product_id": product, "delta_available": available, "delta_reserved": reserved,
             "reason": "RESERVED", "order_id": order, "actor_kind": "USER", "actor_id": actor,
             "note": None, "at": at}
            for product, available, reserved, order, actor, at in movements]),
    }


def cart(rng: random.Random, kind: str) -> list[tuple[int, int]]:
    if kind == "hot":
        return [(HOT_PRODUCT, 1)]
    return [(pid, 1) for pid in sorted(rng.sample(range(1, CATALOG_SIZE + 1),
                                                  rng.randint(1, 3)))]


def _order_snapshot(order_id: int, customer: int, total: int, lines: list[tuple[int, int, int]],
                    now: datetime) -> dict[str, Any]:
    return {"id": order_id, "customer_id": customer, "status": "CREATED", "version": 1,
            "currency": "usd", "total": total,
            "lines": [{"product_id": p, "quantity": q, "unit_price": u} for p, q, u in lines],
            "payment": None, "reserved_until": None, "created_at": now.isoformat(),
            "updated_at": now.isoformat()}


async def _priced_cart(conn: psycopg.AsyncConnection[Any], customer: int, key: str,
                      items: list[tuple[int, int]]
                      ) -> tuple[list[tuple[int, int, int]], int, str, datetime]:
    """What every variant's transaction 1 starts with, as the app does: the customer read
    with the idempotency key's order, the cart's products read; then the lines, total and
    fingerprint."""
    await (await conn.execute(CUSTOMER_AND_KEY, (key, customer))).fetchall()
    products = {row[0]: row for row in
                await (await conn.execute(PRODUCTS, ([pid for pid, _ in items],))).fetchall()}
    lines = [(pid, qty, products[pid][4]) for pid, qty in items]
    fingerprint = hashlib.sha256(";".join(f"{p}x{q}" for p, q in items).encode()).hexdigest()
    return lines, sum(q * u for _, q, u in lines), fingerprint, datetime.now(UTC)


async def app_checkout(conn: psycopg.AsyncConnection[Any], customer: int,
                       items: list[tuple[int, int]]) -> bool:
    """The app's whole checkout (ordergraph/domain/services/checkout.py), null gateway."""
    key = uuid.uuid4().hex
    ids = [pid for pid, _ in items]
    async with conn.transaction():
        lines, total, fingerprint, now = await _priced_cart(conn, customer, key, items)
        order_id = (await (await conn.execute(ORDER_WITH_LINES, {
            "customer": customer, "total": total, "key": key, "fingerprint": fingerprint,
            "now": now, "pids": [p for p, _, _ in lines], "qtys": [q for _, q, _ in lines],
            "prices": [u for _, _, u in lines]})).fetchone())[0]  # type: ignore[index]
        stocks = {row[0]: row for row in await (await conn.execute(LOCK_AND_MOVE, {
            "ids": ids, "d_available": [-q for _, q in items],
            "d_reserved": [q for _, q in items], "at": now})).fetchall()}
        if not all(stocks[pid][4] for pid in ids):
            raise _Insufficient()
        audit = [(now, customer, "ORDER_CREATED", "ORDER", str(order_id), None,
                  _order_snapshot(order_id, customer, total, lines, now))]
        audit += [(now, customer, "STOCK_RESERVED", "INVENTORY", str(p),
                   {"available": stocks[p][1], "reserved": stocks[p][2]},
                   {"available": stocks[p][1] - q, "reserved": stocks[p][2] + q,
                    "order_id": order_id}) for p, q in items]
        await conn.execute(AUDIT_AND_MOVEMENTS, _audit_and_movement_rows(
            audit, [(p, -q, q, order_id, customer, now) for p, q in items]))
    intent = f"pi_null_{order_id}"
    async with conn.transaction():
        now = datetime.now(UTC)
        await conn.execute(OPEN_PAYMENT, (2, intent, f"{intent}_secret_bench", now, now,
                                          order_id, 1))
        await conn.execute(AUDIT_AND_MOVEMENTS, _audit_and_movement_rows(
            [(now, customer, "ORDER_PAYMENT_PENDING", "ORDER", str(order_id),
              {"status": "CREATED"}, {"status": "PAYMENT_PENDING"})], []))
    return True


async def lock_first(conn: psycopg.AsyncConnection[Any], customer: int,
                     items: list[tuple[int, int]]) -> bool:
    """Transaction 1 as the app ran it before issue 12 (bench/sql/checkout_lock_first.sql)."""
    key = uuid.uuid4().hex
    ids = [pid for pid, _ in items]
    async with conn.transaction():
        lines, total, fingerprint, now = await _priced_cart(conn, customer, key, items)
        stocks = {row[0]: row for row in await (await conn.execute(LOCK, (ids,))).fetchall()}
        if any(stocks[pid][1] < qty for pid, qty in items):
            raise _Insufficient()
        order_id = (await (await conn.execute(ORDER, (customer, "usd", total, total, key,
                                                      fingerprint, now, now))).fetchone())[0]  # type: ignore[index]
        async with conn.cursor() as cur:
            await cur.executemany(ITEM, [(order_id, p, q, u) for p, q, u in lines])
            await cur.executemany(MOVE, [(-q, q, now, p) for p, q in items])
            audit = [(now, customer, "ORDER_CREATED", "ORDER", str(order_id), None,
                      Jsonb(_order_snapshot(order_id, customer, total, lines, now)))]
            audit += [(now, customer, "STOCK_RESERVED", "INVENTORY", str(p),
                       Jsonb({"available": stocks[p][1], "reserved": stocks[p][2]}),
                       Jsonb({"available": stocks[p][1] - q, "reserved": stocks[p][2] + q,
                              "order_id": order_id})) for p, q in items]
            await cur.executemany(AUDIT, audit)
            await cur.executemany(MOVEMENT, [(p, -q, q, order_id, customer, now)
                                             for p, q in items])
    return True


async def update_last(conn: psycopg.AsyncConnection[Any], customer: int,
                      items: list[tuple[int, int]]) -> bool:
    """The lock-last variant (bench/sql/checkout_update_last.sql) from Python."""
    key = uuid.uuid4().hex
    try:
        async with conn.transaction():
            lines, total, fingerprint, now = await _priced_cart(conn, customer, key, items)
            inserted = await conn.execute(ORDER, (customer, "usd", total, total, key,
                                                  fingerprint, now, now))
            order_id = (await inserted.fetchone())[0]  # type: ignore[index]
            async with conn.cursor() as cur:
                await cur.executemany(ITEM, [(order_id, p, q, u) for p, q, u in lines])
                await cur.execute(AUDIT, (now, customer, "ORDER_CREATED", "ORDER",
                                          str(order_id), None, Jsonb(_order_snapshot(
                                              order_id, customer, total, lines, now))))
                moved = []
                for p, q in items:  # in product-id order: no deadlocks
                    await cur.execute(MOVE_IF_AVAILABLE, (q, q, now, p, q))
                    row = await cur.fetchone()
                    if row is None:
                        raise _Insufficient()
                    moved.append((row, q))
                await cur.executemany(AUDIT, [
                    (now, customer, "STOCK_RESERVED", "INVENTORY", str(row[0]),
                     Jsonb({"available": row[1] + q, "reserved": row[2] - q}),
                     Jsonb({"available": row[1], "reserved": row[2], "order_id": order_id}))
                    for row, q in moved])
                await cur.executemany(MOVEMENT, [(row[0], -q, q, order_id, customer, now)
                                                 for row, q in moved])
    except _Insufficient:
        return False
    return True


class _Insufficient(Exception):
    pass


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = {"app": app_checkout, "lock_first": lock_first, "update_last": update_last}[
        args.variant]
    options = ""
    if args.isolation.upper() != "READ COMMITTED":
        options = f"-c default_transaction_isolation={args.isolation.lower().replace(' ', '_')}"
    connections = [await psycopg.AsyncConnection.connect(dsn_for(args.database),
                                                         options=options or None)
                   for _ in range(args.clients)]
    latencies: list[float] = []
    failures = {"insufficient": 0, "serialization": 0}
    start = time.perf_counter()
    window_start, window_end = start + args.warmup, start + args.warmup + args.duration

    async def client(index: int) -> None:
        rng = random.Random(index)
        conn = connections[index]
        sequence = 0
        while True:
            customer = 1 + (index + sequence * args.clients) % USERS
            sequence += 1
            sent = time.perf_counter()
            if sent >= window_end:
                return
            try:
                await work(conn, customer, cart(rng, args.cart))
                ok = True
            except _Insufficient:
                ok, kind = False, "insufficient"
            except psycopg.errors.SerializationFailure:
                ok, kind = False, "serialization"
            done = time.perf_counter()
            if window_start <= sent and done <= window_end:
                if ok:
                    latencies.append((done - sent) * 1000)
                else:
                    failures[kind] += 1

    cpu = time.process_time()
    await asyncio.gather(*[client(i) for i in range(args.clients)])
    for conn in connections:
        await conn.close()
    return {"clients": args.clients, "duration_s": args.duration, "requests": len(latencies),
            "throughput": round(len(latencies) / args.duration, 1),
            "latency": latency_summary(latencies), "failures": failures,
            "client_cpu_s": round(time.process_time() - cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--cart", choices=["hot", "uniform"], default="uniform")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--variant", choices=["app", "lock_first", "update_last"],
                        default="app")
    parser.add_argument("--isolation", default="READ COMMITTED")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
