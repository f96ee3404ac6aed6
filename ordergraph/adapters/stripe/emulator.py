"""The local Stripe emulator (localstripe), run as a child process for local payments mode.

`python -m ordergraph.adapters.localstripe --port N` serves localstripe's aiohttp app on
loopback only (its own CLI binds every interface) and without re-pickling its whole store
to /tmp after every write (slow, and shared between every emulator on the machine). It also
accepts two PaymentIntent parameters of Stripe's that localstripe 1.15 refuses ("400
Unexpected"): `shipping` and `receipt_email`, kept and returned as Stripe does; and Stripe's
refund rules it lacks (emulator_refunds.py: `amount_received`, no refund past the capture).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ordergraph.adapters.stripe.emulator_refunds import teach_refund_rules

if TYPE_CHECKING:
    from ordergraph.settings import Settings

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SECRET_KEY = "sk_test_ordergraph_local"  # noqa: S105 - the emulator accepts any sk_test_ key
PUBLISHABLE_KEY = "pk_test_ordergraph_local"
WEBHOOK_NAME = "ordergraph"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStripe:
    """A running emulator child process."""

    process: subprocess.Popen[bytes]
    api_base: str

    @classmethod
    def start(cls, *, port: int | None = None, timeout: float = 20.0) -> LocalStripe:
        port = port or free_port()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "ordergraph.adapters.stripe.emulator", "--port", str(port)],
            preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if not os.environ.get("LOCALSTRIPE_LOG") else None,
            stderr=subprocess.DEVNULL if not os.environ.get("LOCALSTRIPE_LOG") else None,
        )
        emulator = cls(process=process, api_base=f"http://127.0.0.1:{port}")
        emulator._wait_until_ready(timeout)
        return emulator

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"localstripe exited with code {self.process.returncode}; "
                                   "is the [local] extra installed?")
            try:
                httpx.get(f"{self.api_base}/js.stripe.com/v3/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"localstripe did not start within {timeout} s")

    def register_webhook(self, url: str, secret: str, name: str = WEBHOOK_NAME) -> None:
        register_webhook(self.api_base, url, secret, name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wire_local_stripe(settings: Settings, host: str, port: int) -> LocalStripe | None:
    """Start the emulator unless STRIPE_API_BASE names one, and register our webhook with it
    (STRIPE_WEBHOOK_URL, or this server's own address). Settings reach the workers through
    the environment."""
    emulator, api_base = None, settings.stripe_api_base
    if api_base is None:
        emulator = LocalStripe.start()
        api_base = emulator.api_base
    secret = settings.stripe_webhook_secret or "whsec_" + secrets.token_urlsafe(24)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    webhook_url = settings.stripe_webhook_url or f"http://{url_host}:{port}/webhooks/stripe"
    try:
        register_webhook(api_base, webhook_url, secret)
    except Exception:
        if emulator is not None:
            emulator.stop()
        raise
    os.environ["STRIPE_API_BASE"] = api_base
    os.environ["STRIPE_WEBHOOK_SECRET"] = secret
    log.info("local payments mode: Stripe emulator at %s, webhooks to %s", api_base,
             webhook_url)
    return emulator


def _die_with_parent() -> None:
    """Linux: the emulator gets SIGTERM when its parent dies, however the parent dies (a
    SIGTERM that uvicorn re-raises after shutdown skips our `finally`)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def register_webhook(api_base: str, url: str, secret: str, name: str = WEBHOOK_NAME) -> None:
    """Tell the emulator where to send its events, signed with `secret` (replaces `name`)."""
    response = httpx.post(f"{api_base}/_config/webhooks/{name}",
                          data={"url": url, "secret": secret}, timeout=5.0)
    response.raise_for_status()


def _idempotency_middleware() -> object:
    """Stripe's idempotency keys, which localstripe ignores: a POST repeated with the same
    key (the SDK's retries after a lost answer, our own retries) gets the first answer again
    instead of a second charge, intent or refund; the same key with another request is a 400.
    Without it the emulator would double what real Stripe never doubles."""
    import asyncio

    from aiohttp import web

    answered: dict[str, tuple[str, bytes, int, bytes, str]] = {}
    in_flight: dict[str, asyncio.Lock] = {}

    @web.middleware
    async def idempotency(request: web.Request, handler: object) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)  # type: ignore[operator,no-any-return]
        scope = f"{request.headers.get('Authorization', '')} {key}"
        body = await request.read()
        async with in_flight.setdefault(scope, asyncio.Lock()):
            if scope in answered:
                path, sent, status, text, content_type = answered[scope]
                if (path, sent) != (request.path, body):
                    return web.json_response({"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the "
                                   "same parameters they were first used with."}}, status=400)
                return web.Response(status=status, body=text, content_type=content_type,
                                    headers={"Idempotent-Replayed": "true"})
            response = await handler(request)  # type: ignore[operator]
            if response.status < 500 and isinstance(response, web.Response) and response.body:
                answered[scope] = (request.path, body, response.status, bytes(response.body),
                                   response.content_type)
            return response  # type: ignore[no-any-return]

    return idempotency


def _accept_shipping_and_receipt_email(resources: Any) -> None:
    """Stripe's PaymentIntent takes `shipping` ({name, address: {line1, ...}}) and
    `receipt_email`; localstripe refuses both. Keep them on the intent, as Stripe does,
    refusing what Stripe refuses: a shipping hash without a name or an address line."""
    intent_init = resources.PaymentIntent.__init__

    def __init__(self: Any, shipping: Any = None, receipt_email: Any = None,
                 **kwargs: Any) -> None:
        if shipping is not None:
            address = shipping.get("address") if isinstance(shipping, dict) else None
            if not (isinstance(address, dict) and shipping.get("name")
                    and address.get("line1")):
                raise resources.UserError(400, "Bad request: shipping needs name and "
                                               "address[line1]")
        if receipt_email is not None and (not isinstance(receipt_email, str)
                                          or "@" not in receipt_email):
            raise resources.UserError(400, "Bad request: receipt_email")
        intent_init(self, **kwargs)
        self.shipping = shipping
        self.receipt_email = receipt_email

    resources.PaymentIntent.__init__ = __init__


def _serve(host: str, port: int) -> None:
    from aiohttp import web
    from localstripe import resources, server

    # Keep the store in memory only (see the module docstring).
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    _accept_shipping_and_receipt_email(resources)
    teach_refund_rules(resources)
    server.app.middlewares.insert(0, _idempotency_middleware())
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, host=host, port=port, print=None, access_log=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the localstripe Stripe emulator.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback by default; 0.0.0.0 in a container of its own")
    arguments = parser.parse_args()
    _serve(arguments.host, arguments.port)
