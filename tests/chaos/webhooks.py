"""The webhook under the test's control.

The emulator keeps every event it emits (``GET /v1/events``) and would send each one ~1 s
later to every registered webhook. No webhook is registered with this suite's emulator, so
the app hears nothing by itself: ``EventFeed.poll`` reads the new events (deterministically,
right after the step that caused them) into a queue, and the machine's rules deliver, drop,
duplicate, reorder or deliver late any of them to the app's ``POST /webhooks/stripe``, signed
with the app's webhook secret at delivery time the way Stripe signs them (``t=...,v1=...``),
so a held event never goes stale by accident.

The emulator sends no ``charge.refunded``; Stripe does, for every refund. The feed makes one
per refund it sees at the emulator (the refunded charge as the emulator shows it), so a refund
whose answer was lost on the way back still reaches the app the way it would on Stripe.

"Dropped" payment_intent events are lost for good: syncPayment and the sweeper must get the
order to where a timely delivery would have. A failed delivery (non-2xx) stays queued, as
Stripe retries it; ``charge.refunded`` cannot be dropped (Stripe retries it for days, and
nothing else tells the app about a refund it did not ask for).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support import signed_webhook

STALE_SECONDS = 3600  # far past the 300 s the app tolerates


@dataclass
class Delivery:
    event_id: str
    event_type: str
    intent_id: str | None
    status: int
    outcome: str | None

    def __str__(self) -> str:
        return (f"{self.event_type} {self.event_id} ({self.intent_id}) -> {self.status} "
                f"{self.outcome or ''}").rstrip()


def intent_of(event: dict[str, Any]) -> str | None:
    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("object") == "charge":
        return obj.get("payment_intent")
    return obj.get("id")


@dataclass
class EventFeed:
    stripe: httpx.AsyncClient   # the emulator (not through the fault proxy)
    app: httpx.AsyncClient      # the app's server
    secret: str
    pending: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)
    _seen_events: set[str] = field(default_factory=set)
    _seen_refunds: set[str] = field(default_factory=set)

    def reset(self) -> None:
        self.pending.clear()
        self.delivered.clear()
        self.lost.clear()
        self._seen_events.clear()
        self._seen_refunds.clear()

    # ---- reading what the provider emitted ----------------------------------------------

    async def poll(self) -> None:
        for event in await list_all(self.stripe, "/v1/events"):
            if event["id"] not in self._seen_events and \
                    event.get("type", "").startswith("payment_intent."):
                self._seen_events.add(event["id"])
                self.pending.append(event)
        for refund in await list_all(self.stripe, "/v1/refunds"):
            if refund["id"] in self._seen_refunds:
                continue
            self._seen_refunds.add(refund["id"])
            charge = (await self.stripe.get(f"/v1/charges/{refund['charge']}")).json()
            self.pending.append({
                "id": f"evt_refund_{refund['id']}", "object": "event",
                "type": "charge.refunded", "created": int(time.time()), "livemode": False,
                "api_version": "2017-08-15", "data": {"object": charge}})

    # ---- what the machine does with them ----------------------------------------------

    def pick(self, index: int, *, droppable_only: bool = False) -> dict[str, Any] | None:
        candidates = [e for e in self.pending
                      if not droppable_only or e["type"] != "charge.refunded"]
        return candidates[index % len(candidates)] if candidates else None

    def for_intent(self, intent_id: str | None) -> dict[str, Any] | None:
        return next((e for e in self.pending if intent_of(e) == intent_id), None)

    async def deliver(self, event: dict[str, Any], *, stale: bool = False) -> Delivery:
        """Post one event to the app; it leaves the queue once the app answered 2xx."""
        stamp = int(time.time()) - (STALE_SECONDS if stale else 0)
        body, headers = signed_webhook(event, self.secret, timestamp=stamp)
        response = await self.app.post("/webhooks/stripe", content=body, headers=headers)
        outcome = None
        if response.headers.get("content-type", "").startswith("application/json"):
            outcome = response.json().get("outcome") or response.json().get("error")
        if 200 <= response.status_code < 300:
            if event in self.pending:
                self.pending.remove(event)
            self.delivered.append(event)
        return Delivery(event["id"], event["type"], intent_of(event), response.status_code,
                        outcome)

    def drop(self, event: dict[str, Any]) -> None:
        self.pending.remove(event)
        self.lost.append(event)


async def list_all(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every object of a Stripe list endpoint, oldest first for events (store order)."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = {"limit": 100, **params}
        if after:
            query["starting_after"] = after
        response = await client.get(path, params=query)
        response.raise_for_status()
        page = response.json()
        items.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            return items
        after = page["data"][-1]["id"]
