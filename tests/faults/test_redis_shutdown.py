"""Issue 15 item 8: shutting an instance down while its subscribers are being sent events.

uvicorn closes every WebSocket under the app at shutdown while the subscriptions' tasks are
halfway through sending; each of those sends used to become an error with a traceback
("Exception in worker task" / "Unexpected ASGI message 'websocket.send', after sending
'websocket.close'"), hundreds per shutdown. On Redis it reproduced in 4 runs of 5; the
in-process broadcast delivers on every turn of the loop and reproduced it in 5 of 5, so the
end-to-end test uses that, and a second test pins the adapter's behaviour exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

import httpx
import pytest
from starlette.websockets import WebSocketState

from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.resolvers.live_access import SubscriptionSlots
from ordergraph.web.app import Overrides
from ordergraph.web.graphql import QuietWebSocket
from tests.support import Api, live_server, settings_for
from tests.ws import GraphQLWebSocket

pytestmark = pytest.mark.timeout(60)

BROADCAST_URL = "memory://"
STOCK = "subscription { stockUpdated { type stock { available } } }"
SOCKETS, SUBSCRIPTIONS_EACH, STREAMS = 30, 4, 4


def stock_event(n: int) -> str:
    return json.dumps({"event_id": f"e{n}", "type": "STOCK_CHANGED", "product_id": n,
                       "available": 1, "reserved": 0, "at": "2026-01-01T00:00:00+00:00",
                       "updated_at": "2026-01-01T00:00:00+00:00"})


def noise(records: list[logging.LogRecord]) -> list[str]:
    """Errors logged about sending on a closed socket."""
    return [record.getMessage() for record in records
            if record.levelno >= logging.ERROR and
            record.name.startswith(("strawberry", "uvicorn", "ordergraph.web"))]


async def test_shutdown_with_busy_subscribers_logs_no_send_after_close(
        pg_url: str, stripe_emulator: LocalStripe, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            broadcast_url=BROADCAST_URL,
                            broadcast_prefix=f"test-{uuid.uuid4().hex[:8]}:")
    crowd = Overrides(run_sweeper=False, subscription_slots=SubscriptionSlots(per_address=400))
    caplog.set_level(logging.INFO)
    sockets: list[GraphQLWebSocket] = []
    try:
        async with live_server(settings, crowd) as (address, app), \
                httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            admin = await Api(app=app, client=client, settings=settings).create_admin()
            sockets = await asyncio.gather(*[GraphQLWebSocket.open(address, token=admin)
                                             for _ in range(SOCKETS)])
            for socket in sockets:
                for _ in range(SUBSCRIPTIONS_EACH):
                    await socket.subscribe(STOCK)
            hub = app.state.hub
            for _ in range(200):  # every subscription is listening
                if hub.subscriber_count == SOCKETS * SUBSCRIPTIONS_EACH:
                    break
                await asyncio.sleep(0.05)
            assert hub.subscriber_count == SOCKETS * SUBSCRIPTIONS_EACH
            # Events for every subscriber without pause, from several publishers, so that
            # subscriptions are sending while uvicorn closes their sockets.
            stop = asyncio.Event()

            async def stream(first: int) -> None:
                n = first
                while not stop.is_set():
                    n += STREAMS
                    await hub.publish(f"{settings.broadcast_prefix}stock:all", stock_event(n))
                    await asyncio.sleep(0)

            streams = [asyncio.create_task(stream(i)) for i in range(STREAMS)]
            await sockets[0].next("1", 10)  # events are flowing
        # The server has shut down with the streams running.
        stop.set()
        await asyncio.gather(*streams)
    finally:
        for socket in sockets:
            with contextlib.suppress(Exception):
                await socket.close()
    assert noise(caplog.records) == []


class ClosedSocket:
    """What the app holds after the ASGI server closed the connection under it."""

    application_state = client_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.sends = 0

    async def send_text(self, data: str) -> None:
        self.sends += 1
        raise RuntimeError("Unexpected ASGI message 'websocket.send', after sending "
                           "'websocket.close'.")


async def test_a_closing_socket_is_sent_nothing_more() -> None:
    socket = ClosedSocket()
    view = type("View", (), {"encode_json": staticmethod(json.dumps)})()
    adapter = QuietWebSocket(view, socket, socket)  # type: ignore[arg-type]
    for _ in range(3):
        await adapter.send_json({"type": "next", "id": "1", "payload": {}})
    assert socket.sends == 1  # the first failure marks it closing; no traceback, no retry
