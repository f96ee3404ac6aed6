"""`ordergraph serve --workers 2`, real processes: the workers share the connections.

A load balancer (or the bench's clients) opens its keep-alive connections at once; with one
listening socket shared by the workers one of them took them all (README, Scaling out). Each
worker now listens on a socket of its own (SO_REUSEPORT, ordergraph/web/serving.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ordergraph.adapters.stripe.emulator import free_port
from ordergraph.db import migrate

ROOT = Path(__file__).resolve().parents[2]
CONNECTIONS = 32

pytestmark = pytest.mark.timeout(90)


def serve_command(database_url: str, port: int) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "DATABASE_URL": database_url, "ORDERGRAPH_ENV": "test",
           "JWT_SECRET": "workers-test-secret-that-is-long-enough-0123456789",
           "STRIPE_SECRET_KEY": "sk_test_workers", "STRIPE_WEBHOOK_SECRET": "whsec_workers",
           "STRIPE_API_BASE": "http://127.0.0.1:9", "LOG_LEVEL": "WARNING"}
    return ([sys.executable, "-m", "ordergraph.cli", "serve", "--port", str(port),
             "--workers", "2"], env)


@contextlib.contextmanager
def serving(database_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    command, env = serve_command(database_url, port)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def workers_of(supervisor: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's own helpers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == supervisor and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    return found


def _tcp_sockets(port: int, state: str) -> list[str]:
    """The inodes of the TCP sockets on local `port` in `state` (01 established, 0A listen)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    found.append(f"socket:[{fields[9]}]")
    return found


def listening_sockets(port: int) -> int:
    return len(_tcp_sockets(port, "0A"))


def connections_held(pids: set[int], port: int) -> dict[int, int]:
    """Established connections to `port` that each process has accepted."""
    inodes = set(_tcp_sockets(port, "01"))
    held = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    count += os.readlink(fd) in inodes
        held[pid] = count
    return held


async def wait_for_workers(supervisor: subprocess.Popen[bytes], port: int,
                           count: int = 2) -> set[int]:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
        while time.monotonic() < deadline:
            assert supervisor.poll() is None, "serve exited"
            workers = workers_of(supervisor.pid)
            with contextlib.suppress(httpx.HTTPError):
                # Each worker listens on its own socket once its app has started.
                if len(workers) == count and listening_sockets(port) == count and \
                        (await client.get("/healthz")).status_code == 200:
                    return workers
            await asyncio.sleep(0.2)
    raise AssertionError("the workers did not start")


async def open_clients(port: int, count: int, *, paused: set[int] = frozenset()
                       ) -> list[httpx.AsyncClient]:
    """`count` clients, each holding one keep-alive connection that has answered a query.
    With `paused` (worker pids), the workers are stopped while the clients connect, as
    busy workers are: the kernel queues the connections, and who takes them shows."""
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                 limits=httpx.Limits(max_connections=1))
               for _ in range(count)]
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        asking = asyncio.gather(*(client.post("/graphql", json={"query": "{ __typename }"})
                                  for client in clients))
        await asyncio.sleep(1 if paused else 0)  # every connection queued in the kernel
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    answers = await asking
    assert [answer.json() for answer in answers] == \
        [{"data": {"__typename": "Query"}}] * count
    return clients


async def test_the_workers_share_a_crowd_of_keep_alive_connections(
        fresh_pg_database: str) -> None:
    migrate.upgrade(fresh_pg_database)
    port = free_port()
    with serving(fresh_pg_database, port) as supervisor:
        workers = await wait_for_workers(supervisor, port)
        # The connections arrive while one worker is busy (stopped): with one shared
        # socket the other took every one of them (32 + 0), and kept them.
        clients = await open_clients(port, CONNECTIONS, paused={min(workers)})
        try:
            held = connections_held(workers, port)
            assert sum(held.values()) == CONNECTIONS, held
            # Spread by a hash of each client's port: about 16 each. Fewer than 4 here is
            # a one-in-10^5 chance.
            assert min(held.values()) >= 4, held
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))


async def test_a_killed_worker_takes_its_socket_along_and_is_replaced(
        fresh_pg_database: str) -> None:
    migrate.upgrade(fresh_pg_database)
    port = free_port()
    with serving(fresh_pg_database, port) as supervisor:
        victim, survivor = sorted(await wait_for_workers(supervisor, port))
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(0.5)
        # Until the replacement has started and listens, every new connection goes to the
        # survivor: none waits in the dead worker's queue, where no one would accept it.
        clients = await open_clients(port, 8)
        await asyncio.gather(*(client.aclose() for client in clients))

        workers = await wait_for_workers(supervisor, port)
        assert victim not in workers
        assert survivor in workers
        clients = await open_clients(port, CONNECTIONS)
        try:
            held = connections_held(workers, port)
            assert min(held.values()) >= 4, held  # the replacement takes its share
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))


async def test_a_second_serve_on_the_same_port_is_refused(fresh_pg_database: str) -> None:
    migrate.upgrade(fresh_pg_database)
    port = free_port()
    with serving(fresh_pg_database, port) as supervisor:
        await wait_for_workers(supervisor, port)
        command, env = serve_command(fresh_pg_database, port)
        second = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(second.communicate(), 60)
        # SO_REUSEPORT would have let it share the port (and the traffic) silently.
        assert second.returncode == 3, stderr
        assert f"cannot listen on 127.0.0.1:{port}".encode() in stderr
        assert b"Address already in use" in stderr
