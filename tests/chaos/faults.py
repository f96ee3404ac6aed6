"""A fault-injecting HTTP proxy in front of the Stripe emulator.

The app's STRIPE_API_BASE points here. Each request is forwarded to the emulator unless a
fault is armed for it:

- ``timeout``: hold the request, never forward it; the SDK's client gives up first.
- ``500``: answer 500 without forwarding (the provider did nothing).
- ``drop``: forward it (the provider did the work), then cut the connection without an
  answer: the client sees a failure for something that happened.

A fault targets one kind of call (``create``, ``confirm``, ``cancel``, ``refund``,
``retrieve``, ``attach`` or ``any``) and hits the next ``count`` matching requests: 1 is a
blip that the SDK's own retry (max_network_retries) heals, 3 is an outage that outlasts it.

The emulator ignores idempotency keys; real Stripe replays the stored answer of a key it has
seen. The proxy does what Stripe does (same key: the first answer again, without forwarding),
so "a retry after a lost answer charges or refunds twice" cannot be blamed on the emulator:
whatever is charged or refunded twice here would be charged or refunded twice on Stripe.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

import httpx
from aiohttp import web

MODES = ("timeout", "500", "drop")
TARGETS = ("any", "create", "attach", "confirm", "cancel", "refund", "retrieve")


@dataclass(frozen=True)
class Fault:
    """What goes wrong at the provider during one operation (``Fault.none()``: nothing)."""

    mode: str = "none"
    target: str = "any"
    count: int = 0

    @classmethod
    def none(cls) -> Fault:
        return cls()

    def __repr__(self) -> str:
        if self.mode == "none":
            return "Fault.none()"
        return f"Fault({self.mode!r}, {self.target!r}, {self.count})"


def kind_of(method: str, path: str) -> str:
    """The gateway call a request is: create, attach, confirm, cancel, refund, retrieve."""
    if method == "GET":
        return "retrieve"
    if path.endswith("/confirm"):
        return "confirm"
    if path.endswith("/cancel"):
        return "cancel"
    if path.startswith("/v1/refunds"):
        return "refund"
    if re.fullmatch(r"/v1/payment_intents/[^/]+", path):
        return "attach"
    if path == "/v1/payment_intents":
        return "create"
    return "other"


@dataclass
class _Armed:
    fault: Fault
    left: int


@dataclass
class FaultProxy:
    upstream: str
    hold_seconds: float = 2.0  # longer than the gateway's timeout (see world.py)
    port: int = 0
    _armed: _Armed | None = None
    _replies: dict[str, tuple[int, bytes, str, bytes]] = field(default_factory=dict)
    _key_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _client: httpx.AsyncClient | None = None
    injected: list[str] = field(default_factory=list)  # what was done, for notes
    forwarded: int = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        from ordergraph.adapters.stripe.emulator import free_port

        self._client = httpx.AsyncClient(timeout=30)
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.aclose()

    def reset(self, upstream: str | None = None) -> None:
        """A new example: nothing armed, no idempotency memory (the emulator was flushed)."""
        if upstream:
            self.upstream = upstream
        self._armed = None
        self._replies.clear()
        self._key_locks.clear()
        self.injected.clear()

    def arm(self, fault: Fault) -> None:
        self._armed = None if fault.mode == "none" else _Armed(fault, fault.count)
        self.injected.clear()

    def disarm(self) -> list[str]:
        self._armed = None
        done, self.injected = list(self.injected), []
        return done

    def _take_fault(self, kind: str) -> str | None:
        armed = self._armed
        if armed is None or armed.left <= 0:
            return None
        if armed.fault.target not in ("any", kind):
            return None
        armed.left -= 1
        return armed.fault.mode

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        kind = kind_of(request.method, request.path)
        mode = self._take_fault(kind)
        if mode is not None:
            self.injected.append(f"{mode} on {request.method} {request.path}")
        if mode == "timeout":
            await asyncio.sleep(self.hold_seconds)
            return _cut(request)
        if mode == "500":
            return web.json_response({"error": {"type": "api_error",
                                                 "message": "chaos: injected 500"}},
                                     status=500)
        key = request.headers.get("Idempotency-Key")
        if key is None or request.method != "POST":
            status, content, ctype = await self._forward(request, body)
        else:
            status, content, ctype = await self._idempotent(request, body, key)
        if mode == "drop":
            return _cut(request)
        return web.Response(status=status, body=content, headers={"Content-Type": ctype})

    async def _idempotent(self, request: web.Request, body: bytes, key: str
                          ) -> tuple[int, bytes, str]:
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        async with lock:  # Stripe: a concurrent request with the same key waits its turn
            fingerprint = f"{request.method} {request.path}".encode() + b"\n" + body
            seen = self._replies.get(key)
            if seen is not None:
                status, content, ctype, first = seen
                if first != fingerprint:
                    return 400, (b'{"error": {"type": "idempotency_error", "message": '
                                 b'"Keys for idempotent requests can only be used with the '
                                 b'same parameters they were first used with."}}'), \
                        "application/json"
                return status, content, ctype
            status, content, ctype = await self._forward(request, body)
            if status < 500:  # Stripe stores what the endpoint answered, not its crashes
                self._replies[key] = (status, content, ctype, fingerprint)
            return status, content, ctype

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "stripe-version",
                                    "idempotency-key", "user-agent")}
        self.forwarded += 1
        response = await self._client.request(
            request.method, f"{self.upstream}{request.path_qs}", content=body,
            headers=headers)
        return (response.status_code, response.content,
                response.headers.get("content-type", "application/json"))


def _cut(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer."""
    transport = request.transport
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.abort()
    raise asyncio.CancelledError  # aiohttp drops the handler quietly on a closed connection
