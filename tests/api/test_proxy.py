"""Behind a reverse proxy: a real `ordergraph serve` with a real proxy hop in front of it.

Every client reaches the app through one proxy, so without TRUSTED_PROXIES they would all
share its address and one guesser would lock every customer out. The clients here bind their
own loopback addresses (127.0.0.2, 127.0.0.3, ...: all of 127.0.0.0/8 is this machine), the
proxy connects from 127.0.0.1 (trusted by default) and appends the peer it saw to
X-Forwarded-For, as load balancers do.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from tests.support import LOGIN

# More failed logins than one address may make (20 free, then a doubling block); the loop
# stops at the first refusal.
MAX_ATTEMPTS = 40


@dataclass
class Served:
    port: int
    log: Path

    def clients_seen(self) -> list[str]:
        """The client address of each GraphQL request, as the app logged it."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines()
                 if line.startswith("{")]
        return [line["client"] for line in lines if line.get("path") == "/graphql"]


@pytest.fixture
def served(tmp_path: Path, stripe_emulator: LocalStripe) -> Iterator[Served]:
    """`ordergraph serve` on SQLite, TRUSTED_PROXIES at its default (loopback)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/shop.db",
           "TRUSTED_PROXIES": "", "FORWARDED_ALLOW_IPS": "", "BROADCAST_URL": "",
           "STRIPE_SECRET_KEY": "", "STRIPE_API_BASE": stripe_emulator.api_base,
           "ORDERGRAPH_ENV": "development", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "ordergraph.cli"]
    subprocess.run([*command, "migrate"], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=90)
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as output, subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
            cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True) as server:
        try:
            _wait_until_healthy(port, server)
            yield Served(port=port, log=log)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def _wait_until_healthy(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "ordergraph serve exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("ordergraph serve did not answer /healthz")


@asynccontextmanager
async def forwarding_proxy(upstream_port: int) -> AsyncIterator[int]:
    """A reverse proxy on 127.0.0.1: one request per connection, passed upstream with the
    peer's address appended to any X-Forwarded-For the client sent."""

    async def relay(client: asyncio.StreamReader, reply: asyncio.StreamWriter) -> None:
        try:
            head = (await client.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")[:-2]
            headers, forwarded, length = [], [], 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.lower() == "x-forwarded-for":
                    forwarded.append(value.strip())
                elif name.lower() != "connection":
                    headers.append(line)
                if name.lower() == "content-length":
                    length = int(value)
            body = await client.readexactly(length)
            peer = reply.get_extra_info("peername")[0]
            headers += [f"X-Forwarded-For: {', '.join([*forwarded, peer])}",
                        "Connection: close"]
            upstream, request = await asyncio.open_connection("127.0.0.1", upstream_port)
            request.write("\r\n".join([request_line, *headers, "", ""]).encode("latin-1")
                          + body)
            await request.drain()
            reply.write(await upstream.read())  # the whole response: upstream then closes
            await reply.drain()
            request.close()
        finally:
            reply.close()

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    async with proxy:
        yield proxy.sockets[0].getsockname()[1]


@asynccontextmanager
async def client_at(address: str, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose connections come from `address` (a loopback address)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}",
                                 timeout=30) as client:
        yield client


async def failed_login(client: httpx.AsyncClient, attempt: int,
                       forged: str | None = None) -> str:
    """One wrong password (for a new email each time, so only the address's limit applies):
    the payload's type, RateLimitedError once the address is blocked."""
    headers = {"X-Forwarded-For": forged} if forged else {}
    response = await client.post("/graphql", headers=headers, json={
        "query": LOGIN,
        "variables": {"email": f"nobody-{attempt}@example.com", "password": "wrong-password"}})
    assert response.status_code == 200, response.text
    return response.json()["data"]["login"]["__typename"]


async def fail_until_refused(client: httpx.AsyncClient, forge: bool = False) -> int:
    """Failed logins until the address is refused; how many were let through."""
    for attempt in range(MAX_ATTEMPTS):
        forged = f"198.51.100.{attempt + 1}" if forge else None
        if await failed_login(client, attempt, forged) == "RateLimitedError":
            return attempt
    raise AssertionError(f"{MAX_ATTEMPTS} failed logins and never throttled")


async def wait_for_log(served: Served, count: int) -> list[str]:
    for _ in range(100):  # the access line is written once the response has gone
        seen = served.clients_seen()
        if len(seen) >= count:
            return seen
        await asyncio.sleep(0.05)
    return served.clients_seen()


async def test_two_clients_behind_one_proxy_are_throttled_separately(served: Served) -> None:
    async with forwarding_proxy(served.port) as proxy, \
            client_at("127.0.0.2", proxy) as guesser, client_at("127.0.0.3", proxy) as customer:
        let_through = await fail_until_refused(guesser)
        # The guesser's own address is blocked; the customer behind the same proxy is not.
        assert await failed_login(customer, 0) == "InvalidCredentialsError"
        assert await failed_login(guesser, MAX_ATTEMPTS) == "RateLimitedError"
    assert let_through >= 20
    seen = await wait_for_log(served, let_through + 3)
    assert set(seen) == {"127.0.0.2", "127.0.0.3"}
    assert seen.count("127.0.0.3") == 1


async def test_a_forged_forwarded_header_is_not_believed(served: Served) -> None:
    # Straight to the app from an address that is not a trusted proxy: a new forged
    # X-Forwarded-For on every attempt changes nothing, the peer's address is throttled.
    async with client_at("127.0.0.5", served.port) as direct:
        await fail_until_refused(direct, forge=True)
    # Through the proxy, a forged entry stays to the left of the one the proxy appended.
    async with forwarding_proxy(served.port) as proxy, client_at("127.0.0.6", proxy) as sly:
        assert await failed_login(sly, 0, forged="203.0.113.9") == "InvalidCredentialsError"
    seen = await wait_for_log(served, 22)
    assert set(seen) == {"127.0.0.5", "127.0.0.6"}
    assert seen[-1] == "127.0.0.6"
