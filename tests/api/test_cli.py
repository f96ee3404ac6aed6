"""The `ordergraph` command as a user runs it: migrate, seed, create-admin, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ordergraph.adapters.stripe.emulator import free_port
from tests.support import rows

ORDERGRAPH = [sys.executable, "-m", "ordergraph.cli"]


def run(args: list[str], env: dict[str, str], stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORDERGRAPH, *args], env={**os.environ, **env}, input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    return request.getfixturevalue("fresh_pg_database")


def test_migrate_seed_twice_and_create_admin(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url}
    assert run(["migrate"], env, cwd=tmp_path).returncode == 0
    first = run(["seed"], env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    snapshot = [rows(database_url, f"SELECT count(*) FROM {table}")
                for table in ("users", "products", "inventory", "audit_log", "stock_movements")]
    second = run(["seed"], env, cwd=tmp_path)
    assert second.returncode == 0
    assert "nothing to do" in second.stdout
    assert [rows(database_url, f"SELECT count(*) FROM {table}")
            for table in ("users", "products", "inventory", "audit_log",
                          "stock_movements")] == snapshot
    assert rows(database_url, "SELECT p.sku, p.price_cents, i.available FROM products p "
                              "JOIN inventory i ON i.product_id = p.id ORDER BY p.id") == [
        ("mechanical-keyboard", 14999, 50), ("wireless-mouse", 7999, 100),
        ("usb-c-hub", 5999, 75), ("4k-monitor", 39999, 25), ("webcam-hd", 8999, 60)]
    assert rows(database_url, "SELECT email, role FROM users ORDER BY id") == [
        ("customer@example.com", "CUSTOMER"), ("admin@example.com", "ADMIN")]

    created = run(["create-admin", "ops@example.com", "--password-stdin"], env,
                  stdin="correct horse battery\n", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    promoted = run(["create-admin", "customer@example.com", "--password-stdin"], env,
                   stdin="ignored-password\n", cwd=tmp_path)
    assert promoted.returncode == 0
    assert "now an ADMIN" in promoted.stdout
    assert rows(database_url, "SELECT email, role FROM users ORDER BY id")[0] == \
        ("customer@example.com", "ADMIN")
    short = run(["create-admin", "weak@example.com", "--password-stdin"], env, stdin="short\n",
                cwd=tmp_path)
    assert short.returncode == 1
    assert "VALIDATION_FAILED" in short.stderr


def test_bad_configuration_is_one_clear_line(tmp_path: Path) -> None:
    # serve: migrate and seed need only the database (tests/api/test_release_step.py).
    result = run(["serve"], {"ORDERGRAPH_ENV": "production", "JWT_SECRET": "",
                             "DATABASE_URL": "postgresql+psycopg://shop@db/shop"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ordergraph: configuration error: JWT_SECRET is required in production "
        "(at least 32 random bytes)"]


def test_serve_runs_the_embedded_default_with_local_payments(tmp_path: Path) -> None:
    """What `make run` gives: SQLite, in-memory broadcast, the Stripe emulator as a child."""
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/shop.db", "STRIPE_API_BASE": "",
           "STRIPE_SECRET_KEY": "", "BROADCAST_URL": ""}
    assert run(["migrate"], env, cwd=tmp_path).returncode == 0
    assert run(["seed"], env, cwd=tmp_path).returncode == 0
    port = free_port()
    with subprocess.Popen([*ORDERGRAPH, "serve", "--port", str(port)],
                          env={**os.environ, **env}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as server:
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(f"{base}/healthz", server)
            children = _children(server.pid)
            assert children, "the Stripe emulator should run as a child process"
            checkout = _buy_one_as_the_seeded_customer(base)
            assert checkout["order"]["status"] == "PAYMENT_PENDING"
            assert checkout["clientSecret"].startswith("pi_")
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
    # The emulator child stopped with the server.
    time.sleep(0.2)
    assert [pid for pid in children if _alive(pid)] == []


def _buy_one_as_the_seeded_customer(base: str) -> dict:
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/graphql", headers={"accept": "text/html"})
        assert "graphiql" in page.text.lower()
        login = client.post("/graphql", json={"query": 'mutation { login(email: '
                            '"customer@example.com", password: "customer123") '
                            "{ ... on AuthPayload { token } } }"}).json()
        token = login["data"]["login"]["token"]
        checkout = client.post(
            "/graphql", headers={"authorization": f"Bearer {token}"},
            json={"query": 'mutation { checkout(input: {items: [{productId: "1", '
                           'quantity: 1}]}) { __typename ... on CheckoutPayload '
                           "{ clientSecret order { status } } } }"}).json()
    return checkout["data"]["checkout"]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                           check=False)
    return [int(line) for line in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split()[2] != "Z"


def _wait_for(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"server exited: {output}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


async def test_sigterm_shuts_down_gracefully(tmp_path: Path) -> None:
    """Subscribers are told the server is going (close 1012) and everything stops cleanly."""
    import asyncio

    from websockets.exceptions import ConnectionClosed

    from tests.ws import GraphQLWebSocket

    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/shop.db", "STRIPE_API_BASE": "",
           "STRIPE_SECRET_KEY": "", "BROADCAST_URL": ""}
    assert run(["migrate"], env, cwd=tmp_path).returncode == 0
    assert run(["seed"], env, cwd=tmp_path).returncode == 0
    port = free_port()
    with subprocess.Popen([*ORDERGRAPH, "serve", "--port", str(port)],  # noqa: ASYNC220
                          env={**os.environ, **env}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as server:
        await asyncio.to_thread(_wait_for, f"http://127.0.0.1:{port}/healthz", server)
        children = _children(server.pid)
        socket = await GraphQLWebSocket.open(f"127.0.0.1:{port}")
        sub = await socket.subscribe('subscription { stockUpdated(productIds: ["1"]) '
                                     "{ type } }")
        assert (await socket.next(sub))["stockUpdated"]["type"] == "SNAPSHOT"

        server.send_signal(signal.SIGTERM)
        with pytest.raises((ConnectionClosed, StopAsyncIteration, TimeoutError)):
            await socket.next(sub, timeout=15)
        code = await asyncio.to_thread(server.wait, 20)
        log = server.stderr.read() if server.stderr else ""
        await socket.close()
    assert code in (0, -signal.SIGTERM), log  # uvicorn re-raises the signal once it is done
    assert "Application shutdown complete." in log
    assert "Traceback" not in log
    await asyncio.sleep(0.3)
    assert [pid for pid in children if _alive(pid)] == []
