"""A crash in the middle of a checkout rush, then a restart (issue 10, item 11).

A real `ordergraph serve` process, on a PostgreSQL database of this test's own, takes a rush of
concurrent checkouts over HTTP while the payment provider answers slowly (a proxy in front of
the Stripe emulator holds every answer), so that orders are caught between checkout's two
transactions: written CREATED with their stock reserved, their PaymentIntent opened at the
provider but not yet stored. The server is killed with SIGKILL right then and started again on
the same database. Once the reservation TTL and a few sweeps have passed:

- no order still holds stock past its deadline (every order is settled, or PAYMENT_PENDING
  with `reserved_until` in the future);
- the stock adds up (reserved = units of open orders, available + reserved + sold = initial,
  the stock_movements ledger sums to the levels);
- at the provider, no PaymentIntent of an order that will never be paid is left payable.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from ordergraph.db import migrate
from tests.support import (
    CHECKOUT,
    CREATE_PRODUCT,
    LOGIN,
    REGISTER,
    rows,
    stock_invariant_violations,
)

ROOT = Path(__file__).resolve().parents[2]
TTL_SECONDS = 3
SWEEP_SECONDS = 1
PROVIDER_DELAY = 1.0        # how long the proxy holds each answer of the provider in the rush
CUSTOMERS = 6
STOCK = {"crash-kettle": 40, "crash-toaster": 40}
# Kill when this many orders are caught between the transactions (their intent opened at the
# provider, not stored) and this many have their payment stored.
CAUGHT_BEFORE_KILL = 2
PENDING_BEFORE_KILL = 3
BUDGET_SECONDS = 60
ADMIN_EMAIL, ADMIN_PASSWORD = "crash-admin@example.com", "crash-admin-password"
SECRET_KEY = "sk_test_ordergraph_crash"  # the emulator takes any sk_test_ key
SETTLED = {"PAID", "FULFILLED", "CANCELLED", "FAILED", "REFUNDED"}
PAYABLE = {"requires_payment_method", "requires_confirmation", "requires_action"}

pytestmark = pytest.mark.timeout(BUDGET_SECONDS + 30)


class SlowProvider:
    """A TCP proxy in front of the emulator. Requests go through at once (the provider does
    the work: the intent exists), answers are held `delay` seconds (the app does not know)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._connections:  # closed sockets end their pumps; let them finish
            await asyncio.wait(set(self._connections), timeout=5)

    async def _connection(self, client_reader: asyncio.StreamReader,
                          client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        await asyncio.gather(self._pump(client_reader, upstream_writer, hold=False),
                             self._pump(upstream_reader, client_writer, hold=True),
                             return_exceptions=True)
        self._writers.difference_update((client_writer, upstream_writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    hold: bool) -> None:
        try:
            while data := await reader.read(65536):
                if hold and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class Server:
    """`ordergraph serve` as a child process (the code of this checkout, not an installed one)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env, self.workdir = env, workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.log_path = workdir / "server.log"

    def command(self, *args: str) -> list[str]:
        script = Path(sys.executable).with_name("ordergraph")
        if script.exists():
            return [str(script), *args]
        return [sys.executable, "-c", "import sys; from ordergraph.cli import main; "
                                      "sys.exit(main())", *args]

    async def start(self, deadline: float) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        with self.log_path.open("ab") as log:
            self.process = await asyncio.to_thread(
                subprocess.Popen, self.command("serve", "--port", str(port)), env=self.env,
                cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"the server exited:\n{self.log_tail()}"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"the server did not get ready in time:\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9: no shutdown, no finally, no rollback but the database's own."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 20, width: int = 400) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n".join(line[:width] for line in tail)


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any], *,
              token: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), json.dumps(body["errors"], indent=2)
    return body["data"]


async def checkout(client: httpx.AsyncClient, token: str, items: list[tuple[str, int]],
                   key: str) -> str:
    """One checkout of the rush: its result type, or the transport error the crash caused."""
    try:
        data = await gql(client, CHECKOUT, {"input": {
            "items": [{"productId": pid, "quantity": qty} for pid, qty in items],
            "idempotencyKey": key}}, token=token)
    except httpx.TransportError as error:
        return type(error).__name__
    return str(data["checkout"]["__typename"])


async def shopper(client: httpx.AsyncClient, token: str, products: list[str], name: str,
                  rng: random.Random, stop: asyncio.Event, start_after: float) -> list[str]:
    """A customer checking out one cart after another until the server goes away. Customers
    start one after another, so that some checkout is always between its transactions."""
    await asyncio.sleep(start_after)
    results = []
    for n in range(50):
        if stop.is_set():
            break
        cart = rng.sample(products, rng.randint(1, len(products)))
        results.append(await checkout(client, token, [(pid, rng.randint(1, 2)) for pid in cart],
                                      key=f"{name}-{n}"))
        if results[-1] != "CheckoutPayload":  # e.g. TOO_MANY_OPEN_ORDERS: do not spin
            await asyncio.sleep(0.1)
    return results


def intents(api_base: str) -> list[dict[str, Any]]:
    """Every PaymentIntent the emulator holds (straight from the emulator, no proxy)."""
    response = httpx.get(f"{api_base}/v1/payment_intents", params={"limit": 100},
                         headers={"authorization": f"Bearer {SECRET_KEY}"}, timeout=10)
    response.raise_for_status()
    listing = response.json()
    assert not listing.get("has_more"), "more than 100 intents: raise the limit"
    return list(listing["data"])


def caught_between(url: str, api_base: str) -> tuple[list[int], int]:
    """CREATED orders whose intent the provider has opened, and the PAYMENT_PENDING count."""
    opened = {int(order_id) for intent in intents(api_base)
              if str(order_id := (intent.get("metadata") or {}).get("order_id", "")).isdigit()}
    states = rows(url, "SELECT id, status FROM orders")
    caught = sorted(opened.intersection(i for i, status in states if status == "CREATED"))
    return caught, sum(1 for _, status in states if status == "PAYMENT_PENDING")


def orders_by_status(url: str) -> dict[str, int]:
    return {status: int(count) for status, count in
            rows(url, "SELECT status, count(*) FROM orders GROUP BY status")}


def problems_after_restart(url: str, api_base: str, initial: dict[int, int]) -> list[str]:
    """Everything that breaks the crash's invariant, in words (empty when all is well)."""
    problems = []
    orders = {int(row[0]): row for row in rows(
        url, "SELECT o.id, o.status, o.reserved_until, o.payment_intent_id, o.created_at, "
             "now(), (SELECT COALESCE(SUM(quantity), 0) FROM order_items i "
             "WHERE i.order_id = o.id) FROM orders o ORDER BY o.id")}
    for order_id, status, reserved_until, intent_id, created_at, now, units in orders.values():
        if status in SETTLED:
            continue
        if status == "PAYMENT_PENDING" and reserved_until is not None and reserved_until > now:
            continue
        deadline = reserved_until.isoformat() if reserved_until else "none"
        problems.append(f"order {order_id} is {status} and holds {units} units past its "
                        f"deadline (created {created_at.isoformat()}, reserved_until "
                        f"{deadline}, intent {intent_id}, now {now.isoformat()})")
    problems += stock_invariant_violations(url, initial)
    for intent in intents(api_base):
        order_id = (intent.get("metadata") or {}).get("order_id")
        order = orders.get(int(order_id)) if order_id and str(order_id).isdigit() else None
        if order is None:
            problems.append(f"intent {intent['id']} ({intent['status']}) names no order of "
                            f"ours: {intent.get('metadata')}")
            continue
        _, status, _, stored_intent, *_ = order
        if intent["status"] not in PAYABLE:
            continue
        if status in SETTLED:
            problems.append(f"intent {intent['id']} of {status} order {order_id} is still "
                            f"payable ({intent['status']})")
        elif stored_intent != intent["id"]:
            problems.append(f"intent {intent['id']} of {status} order {order_id} is payable "
                            f"but the order knows only {stored_intent}")
    return problems


@pytest.fixture
def crash_database(fresh_pg_database: str) -> str:
    migrate.upgrade(fresh_pg_database)
    return fresh_pg_database


@pytest.fixture
def emulator() -> Iterator[LocalStripe]:
    running = LocalStripe.start()
    try:
        yield running
    finally:
        running.stop()


async def test_a_crash_mid_rush_leaves_no_stock_held_past_its_ttl(
        crash_database: str, emulator: LocalStripe, tmp_path: Path) -> None:
    url, started = crash_database, time.monotonic()
    budget_end = started + BUDGET_SECONDS
    proxy = SlowProvider(int(emulator.api_base.rsplit(":", 1)[1]))
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
           if name in os.environ}
    env.update({
        "PYTHONPATH": str(ROOT),
        "ORDERGRAPH_ENV": "production",
        "DATABASE_URL": url,
        "JWT_SECRET": "crash-test-secret-that-is-long-enough-0123456789",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_ordergraph_crash",
        "STRIPE_WEBHOOK_SECRET": "whsec_ordergraph_crash",
        "STRIPE_API_BASE": await proxy.start(),
        # Production needs a mail relay; nothing listens there (email stays queued).
        "SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
        "MAIL_FROM": "Shop <orders@shop.example.com>",
        "PUBLIC_URL": "https://shop.example.com",
        "RESERVATION_TTL": f"{TTL_SECONDS}s",
        "SWEEP_INTERVAL": f"{SWEEP_SECONDS}s",
        "BROADCAST_URL": "memory://",
        "LOG_LEVEL": "WARNING",
    })
    server = Server(env, tmp_path)
    try:
        admin = await asyncio.to_thread(
            subprocess.run, server.command("create-admin", ADMIN_EMAIL, "--password-stdin"),
            env=env, cwd=tmp_path, input=ADMIN_PASSWORD + "\n", capture_output=True,
            text=True, timeout=30, check=False)
        assert admin.returncode == 0, admin.stderr
        await server.start(deadline=min(budget_end, time.monotonic() + 25))

        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as client:
            login = await gql(client, LOGIN, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            admin_token = login["login"]["token"]
            products: dict[str, int] = {}
            for sku, stock in STOCK.items():
                created = (await gql(client, CREATE_PRODUCT, {"input": {
                    "sku": sku, "name": sku.replace("-", " ").title(), "priceCents": 1999,
                    "initialStock": stock}}, token=admin_token))["createProduct"]
                assert created["__typename"] == "ProductPayload", created
                products[created["product"]["id"]] = stock
            tokens = []
            for i in range(CUSTOMERS):
                registered = (await gql(client, REGISTER, {"input": {
                    "email": f"rush{i}@example.com", "password": "rush-password"}}))["register"]
                assert registered["__typename"] == "AuthPayload", registered
                tokens.append(registered["token"])

            # The rush, with a slow provider; kill -9 once orders are caught in between.
            proxy.delay = PROVIDER_DELAY
            stop, rng = asyncio.Event(), random.Random(11)
            rush = [asyncio.create_task(shopper(client, token, list(products), f"rush{i}",
                                                random.Random(rng.random()), stop,
                                                start_after=i * PROVIDER_DELAY / CUSTOMERS))
                    for i, token in enumerate(tokens)]
            kill_deadline = min(budget_end, time.monotonic() + 20)
            while time.monotonic() < kill_deadline and not all(t.done() for t in rush):
                caught, pending = await asyncio.to_thread(caught_between, url,
                                                          emulator.api_base)
                if len(caught) >= CAUGHT_BEFORE_KILL and pending >= PENDING_BEFORE_KILL:
                    break
                await asyncio.sleep(0.05)
            server.kill()
            stop.set()
            results = [r for task in await asyncio.gather(*rush) for r in task]
        proxy.delay = 0.0
        killed_at = time.monotonic()
        at_kill = orders_by_status(url)
        caught, _ = caught_between(url, emulator.api_base)  # as the crash left them
        assert caught, f"the kill missed the window between checkout's transactions: " \
                       f"{at_kill}; rush results {results}"

        # Restart on the same database; give the TTL and a few sweeps time to act.
        await server.start(deadline=min(budget_end, time.monotonic() + 25))
        earliest = killed_at + TTL_SECONDS + 2 * SWEEP_SECONDS + 1
        await asyncio.sleep(max(0.0, earliest - time.monotonic()))
        latest = min(budget_end - 3, earliest + 10)
        while True:
            problems = await asyncio.to_thread(problems_after_restart, url,
                                               emulator.api_base, products_initial(products))
            if not problems or time.monotonic() >= latest:
                break
            await asyncio.sleep(0.5)
        assert not problems, (
            f"{len(problems)} problems {time.monotonic() - killed_at:.1f} s after a kill -9 "
            f"with {TTL_SECONDS} s reservations and {SWEEP_SECONDS} s sweeps:\n"
            + "\n".join(problems)
            + f"\n\norders at the kill: {at_kill}; caught between the transactions: {caught}; "
              f"now: {orders_by_status(url)}\nserver log:\n{server.log_tail()}")
    finally:
        server.kill()
        await proxy.stop()


def products_initial(products: dict[str, int]) -> dict[int, int]:
    return {int(pid): stock for pid, stock in products.items()}
