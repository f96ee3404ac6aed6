"""A PostgreSQL outage under load (issue 15, item 3): clean, retryable errors, then recovery.

A throwaway PostgreSQL cluster of this test's own (initdb in a temp dir, a spare port, trust
auth, run as the `postgres` user) serves the app in process while a few clients keep
checking out, reading the catalog and probing /readyz. PostgreSQL is stopped (`pg_ctl stop -m
fast`) for a few seconds and started again; the app is never restarted.

- every failed answer during the outage is SERVICE_UNAVAILABLE with `retryAfterSeconds` and
  a Retry-After header (GraphQL) or 503 with Retry-After (HTTP); never INTERNAL_SERVER_ERROR;
- the log has one warning for the outage, one line when it ends, one access line per
  request, and no traceback at all;
- requests succeed again within a bounded time, none fails after the first success;
- a restart while the app is idle costs no request at all (idle connections are pinged);
- a frozen server (SIGSTOP: accepts nothing, refuses nothing) is SERVICE_UNAVAILABLE after
  the connect timeout, not a hang;
- the stock invariant holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from ordergraph.db import migrate, outage
from tests.support import Api, running_api, settings_for, stock_invariant_violations

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CUSTOMERS = 3
STOCK = 100_000
WARM_UP_SECONDS = 1.0
OUTAGE_SECONDS = 3.0
RECOVERY_BOUND_SECONDS = 5.0
PAUSE_SECONDS = 0.05  # between one client's requests: a small, steady load

CATALOG = "query Catalog { products(first: 5) { totalCount } }"
CHECKOUT = """
mutation Checkout($input: CheckoutInput!) {
  checkout(input: $input) { __typename ... on CheckoutPayload { order { id status } } }
}"""

needs_a_cluster = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or os.geteuid() != 0,
    reason="needs PostgreSQL 15's binaries and root (runs them as the postgres user)")


@pytest.mark.parametrize(("error", "outage_or_not"), [
    (psycopg.OperationalError("connection failed: Connection refused"), True),
    (psycopg.InterfaceError("the connection is closed"), True),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
    (psycopg.errors.CannotConnectNow("the database system is shutting down"), True),
    (psycopg.errors.ConnectionFailure("connection failure"), True),
    (psycopg.errors.SerializationFailure("could not serialize access"), False),
    (psycopg.errors.DeadlockDetected("deadlock detected"), False),
    (psycopg.errors.UniqueViolation("duplicate key value"), False),
    (psycopg.errors.CheckViolation("violates check constraint"), False),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
    (RuntimeError("not the database"), False),
])
def test_only_lost_connections_are_outages(error: Exception, outage_or_not: bool) -> None:
    assert outage.is_connection_failure(error) is outage_or_not
    wrapped = DBAPIError.instance("SELECT 1", {}, error, psycopg.Error) \
        if isinstance(error, psycopg.Error) else error
    assert outage.is_connection_failure(wrapped) is outage_or_not


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir on a spare loopback port, owned by `postgres`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ordergraph-outage-"))
        self.data = self.root / "data"
        self.port = free_port()
        shutil.chown(self.root, user="postgres", group="postgres")

    @property
    def url(self) -> str:
        # Connecting to a frozen server gives up after 2 s instead of the default 5.
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres" \
               "?connect_timeout=2"

    def _run(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True,
                       capture_output=True, timeout=30)

    def create(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "postgres.log"), "-w", "-t", "20", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "20",
                  "stop")

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def freeze(self) -> None:
        """The server stops answering without closing anything (a stall, a partition)."""
        os.kill(self._postmaster(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self._postmaster(), signal.SIGCONT)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(OSError, ValueError):
                self.thaw()  # a frozen postmaster would not hear the stop
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Answer:
    at: float
    ok: bool
    what: str  # "ok", or what was wrong / which error code


@dataclass
class Load:
    """A few clients in a loop; every answer is judged and kept with its time."""

    api: Api
    customers: list[str]
    product_id: str
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _graphql(self, query: str, variables: dict[str, object] | None,
                       token: str | None, field_name: str, success: str | None) -> None:
        response = await self.api.post(query, variables, token=token)
        body = response.json() if response.status_code == 200 else {}
        if response.status_code != 200:
            self._add(False, f"HTTP {response.status_code}")
        elif body.get("errors"):
            (error,) = body["errors"]
            extensions = error.get("extensions") or {}
            code = extensions.get("code")
            well_formed = code == "SERVICE_UNAVAILABLE" and \
                extensions.get("retryAfterSeconds", 0) > 0 and \
                int(response.headers.get("retry-after", "0")) > 0
            self._add(False, code if well_formed else f"malformed {error}")
        else:
            result = body["data"][field_name]
            ok = success is None or result["__typename"] == success
            self._add(ok, "ok" if ok else f"unexpected {result}")

    async def _readyz(self) -> None:
        response = await self.api.client.get("/readyz")
        if response.status_code == 200:
            self._add(True, "ok")
        elif response.status_code == 503 and int(response.headers.get("retry-after", 0)) > 0:
            self._add(False, "503")
        else:
            self._add(False, f"HTTP {response.status_code} {response.headers}")

    def _add(self, ok: bool, what: str) -> None:
        self.answers.append(Answer(time.monotonic(), ok, what))

    async def _client(self, make_request: object) -> None:
        while not self.stop.is_set():
            await make_request()  # type: ignore[operator]
            await asyncio.sleep(PAUSE_SECONDS)

    def start(self) -> list[asyncio.Task[None]]:
        def checkout(token: str) -> object:
            return lambda: self._graphql(CHECKOUT, {"input": {"items": [
                {"productId": self.product_id, "quantity": 1}]}}, token, "checkout",
                "CheckoutPayload")

        clients = [checkout(token) for token in self.customers]
        clients.append(lambda: self._graphql(CATALOG, None, None, "products", None))
        clients.append(self._readyz)
        return [asyncio.create_task(self._client(client)) for client in clients]

    def since(self, moment: float) -> list[Answer]:
        return [answer for answer in self.answers if answer.at >= moment]


async def _wait_for_success(load: Load, after: float, bound: float) -> float:
    """Seconds from `after` until every kind of request has succeeded again."""
    deadline = after + bound
    while time.monotonic() < deadline:
        recovered = [answer for answer in load.since(after) if answer.ok]
        if len(recovered) >= len(load.customers) + 2:
            return recovered[0].at - after
        await asyncio.sleep(0.05)
    raise AssertionError(f"no recovery within {bound} s: {load.since(after)[-5:]}")


@needs_a_cluster
async def test_a_database_outage_is_service_unavailable_and_heals_by_itself(
        throwaway_pg: ThrowawayPostgres, stripe_emulator: LocalStripe,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    migrate.upgrade(throwaway_pg.url)
    # The idle ping's threshold, short enough for the quiet restart at the end.
    monkeypatch.setattr(outage, "IDLE_PING_SECONDS", 0.5)
    settings = settings_for(throwaway_pg.url, stripe_api_base=stripe_emulator.api_base,
                            max_unpaid_orders=0, max_unpaid_units=0)
    async with running_api(settings) as api:
        admin = await api.create_admin()
        product_id = await api.create_product(admin, sku="outage-lamp", stock=STOCK)
        load = Load(api, await api.customers(CUSTOMERS, prefix="outage"), product_id)
        caplog.set_level(logging.INFO)
        tasks = load.start()
        try:
            await asyncio.sleep(WARM_UP_SECONDS)
            assert all(answer.ok for answer in load.answers), load.answers[:5]

            outage_started = time.monotonic()
            await asyncio.to_thread(throwaway_pg.stop)
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(throwaway_pg.start)
            database_back = time.monotonic()

            recovery = await _wait_for_success(load, database_back, RECOVERY_BOUND_SECONDS)
            await asyncio.sleep(0.5)  # some more load after the recovery
        finally:
            load.stop.set()
            await asyncio.gather(*tasks)

        during = load.since(outage_started)
        failures = [answer for answer in during if not answer.ok]
        assert failures, "the outage was not noticed"
        assert {answer.what for answer in failures} <= {"SERVICE_UNAVAILABLE", "503"}, \
            {answer.what for answer in failures}
        first_success = next(answer.at for answer in load.since(database_back) if answer.ok)
        assert all(answer.ok for answer in load.since(first_success)), \
            [answer for answer in load.since(first_success) if not answer.ok]
        print(f"\nrecovered {recovery:.2f} s after PostgreSQL accepted connections again; "
              f"{len(failures)} of {len(during)} answers failed since the stop")
        _assert_quiet_log(caplog, failures)

        # Restarted while nobody asked anything: pooled connections are all dead, and the
        # first request after must not pay for it.
        await asyncio.to_thread(throwaway_pg.stop)
        await asyncio.to_thread(throwaway_pg.start)
        await asyncio.sleep(0.6)
        body = await api.raw(CATALOG)
        assert not body.get("errors"), body

        await _a_frozen_server_is_an_outage_too(api, throwaway_pg)

    assert stock_invariant_violations(throwaway_pg.url, {int(product_id): STOCK}) == []
    assert time.monotonic() - started < 35


async def _a_frozen_server_is_an_outage_too(api: Api, cluster: ThrowawayPostgres) -> None:
    """A server that accepts nothing and refuses nothing: connecting gives up after the
    connect timeout, and the answer is SERVICE_UNAVAILABLE, not a hang."""
    await api.app.state.engine.dispose()  # the next request must open a connection
    # An anonymous catalog page already cached is still answered from memory (nothing can
    # change while the database is away); this request must reach the database.
    api.app.state.response_cache.invalidate()
    cluster.freeze()
    try:
        asked = time.monotonic()
        async with asyncio.timeout(10):
            code = await api.error_code(CATALOG)
        assert code == "SERVICE_UNAVAILABLE"
        assert time.monotonic() - asked < 5
    finally:
        cluster.thaw()
    body = await api.raw(CATALOG)
    assert not body.get("errors"), body


def _assert_quiet_log(caplog: pytest.LogCaptureFixture, failures: list[Answer]) -> None:
    records = caplog.records
    tracebacks = [record for record in records if record.exc_info or record.stack_info]
    assert not tracebacks, [record.getMessage() for record in tracebacks]
    warnings = [record for record in records if record.name == "ordergraph.db.outage"
                and record.levelno == logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    back = [record for record in records if record.name == "ordergraph.db.outage"
            and record.levelno == logging.INFO and "back" in record.getMessage()]
    assert len(back) == 1
    unavailable_lines = [record for record in records if record.name == "ordergraph.access"
                         and getattr(record, "outcome", None) == "SERVICE_UNAVAILABLE"]
    graphql_failures = [answer for answer in failures if answer.what == "SERVICE_UNAVAILABLE"]
    assert len(unavailable_lines) == len(graphql_failures)
    sample = [warnings[0], *unavailable_lines[:2],
              *[record for record in records if record.name != "httpx"
                and "/readyz" in record.getMessage()][:1], *back]
    print("the log around the outage:\n" + "\n".join(
        f"  {record.levelname} {record.name}: {record.getMessage()}" for record in sample))
