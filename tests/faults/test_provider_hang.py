"""A payment provider that hangs mid-request: every call the app makes to it, not only
checkout's, gives up at PAYMENT_PROVIDER_DEADLINE (README, "Payment provider slow or hung").

The real app over GraphQL, the real Stripe SDK, and an emulator of our own that is frozen
with SIGSTOP (it accepts connections and answers nothing) while one mutation runs. Each
request answers its provider error within the deadline instead of the SDK's timeout times
its retries, and leaves the order where the usual recovery (paying again, the sweeper)
finishes it once the provider is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.adapters.stripe.gateway import StripeGateway
from ordergraph.domain.model import Money
from ordergraph.domain.services.sweeper import sweep
from ordergraph.web.app import Overrides
from tests.support import (
    CANCEL,
    CARD_OK,
    PAY,
    REFUND,
    SYNC,
    Api,
    Customer,
    intent_event,
    rows,
    running_api,
    settings_for,
    signed_webhook,
    stock_invariant_violations,
)

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = timedelta(seconds=1)
# Well inside the deadline plus the database work; the SDK alone would wait 3 x 15 s.
WITHIN = 3.0

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def emulator() -> Iterator[LocalStripe]:
    """Our own emulator: freezing the session's would stall every other test."""
    emulator = LocalStripe.start()
    try:
        yield emulator
    finally:
        os.kill(emulator.process.pid, signal.SIGCONT)
        emulator.stop()


@contextlib.contextmanager
def frozen(emulator: LocalStripe) -> Iterator[None]:
    os.kill(emulator.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(emulator.process.pid, signal.SIGCONT)


@pytest.fixture
async def api(pg_url: str, emulator: LocalStripe, clock: OffsetClock) -> AsyncIterator[Api]:
    settings = settings_for(pg_url, stripe_api_base=emulator.api_base,
                            payment_provider_deadline=DEADLINE)
    async with running_api(settings, Overrides(clock=clock, run_sweeper=False)) as client:
        yield client


@pytest.fixture
async def browser(emulator: LocalStripe) -> AsyncIterator[Customer]:
    side = Customer(emulator.api_base)
    yield side
    await side.aclose()


async def timed(request: Any) -> tuple[Any, float]:
    """The answer and how long it took; a request still waiting after twice WITHIN fails
    the test there, rather than after the SDK's minute and a half."""
    started = time.monotonic()
    answer = await asyncio.wait_for(request, 2 * WITHIN)
    return answer, time.monotonic() - started


async def pending_order(api: Api, sku: str) -> tuple[str, str, dict[str, Any]]:
    admin = await api.create_admin()
    product = await api.create_product(admin, sku=sku, price_cents=1500, stock=5)
    customer = await api.register(f"{sku}@example.com")
    order = (await api.checkout(customer, [(product, 2)]))["order"]
    assert order["status"] == "PAYMENT_PENDING", order
    return product, customer, order


async def paid_order(api: Api, browser: Customer, sku: str) -> tuple[str, dict[str, Any]]:
    product, customer, order = await pending_order(api, sku)
    method = await browser.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert paid["order"]["status"] == "PAID", paid
    return product, paid["order"]


def status_of(api: Api, order_id: str) -> tuple[Any, ...]:
    (found,) = rows(api.settings.database_url,
                    "SELECT status, refund_status FROM orders WHERE id = %s", (int(order_id),))
    return found


def provider_error(answer: dict[str, Any]) -> bool:
    return (answer["__typename"], answer.get("code")) == ("PaymentError",
                                                           "PAYMENT_PROVIDER_ERROR")


async def test_a_pay_the_provider_never_answers_is_a_provider_error_and_can_be_paid_again(
        api: Api, emulator: LocalStripe, browser: Customer) -> None:
    product, customer, order = await pending_order(api, "pay-hang")
    method = await browser.card(CARD_OK)

    with frozen(emulator):
        answer, elapsed = await timed(api.gql(PAY, {"id": order["id"], "pm": method},
                                              token=customer))
    answer = answer["payOrder"]

    assert provider_error(answer), answer
    assert elapsed < WITHIN, elapsed
    # The confirmation may have gone through: the order still waits, its stock still held.
    assert status_of(api, order["id"]) == ("PAYMENT_PENDING", None)
    again = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert again["__typename"] == "PayOrderPayload", again
    assert again["order"]["status"] == "PAID"
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_a_refund_the_provider_never_answers_is_finished_by_the_sweeper_once(
        api: Api, emulator: LocalStripe, browser: Customer, clock: OffsetClock) -> None:
    product, order = await paid_order(api, browser, "refund-hang")
    admin = await api.login("boss@example.com", "admin-password")

    with frozen(emulator):
        answer, elapsed = await timed(api.gql(REFUND, {"id": order["id"]}, token=admin))
    answer = answer["refundOrder"]

    assert provider_error(answer), answer
    assert elapsed < WITHIN, elapsed
    # Recorded before the call: fulfilment waits, and the sweeper finishes it.
    assert status_of(api, order["id"]) == ("PAID", "REQUESTED")
    clock.advance(timedelta(minutes=3))
    s = api.deps
    report = await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)
    assert (report.refunds_retried, report.errors) == (1, [])
    assert status_of(api, order["id"]) == ("REFUNDED", "SUCCEEDED")
    assert len(await browser.refunds_of(order["payment"]["intentId"])) == 1
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_a_cancel_the_provider_never_answers_still_cancels_the_order(
        api: Api, emulator: LocalStripe) -> None:
    product, customer, order = await pending_order(api, "cancel-hang")

    with frozen(emulator):
        answer, elapsed = await timed(api.gql(CANCEL, {"id": order["id"]}, token=customer))
    answer = answer["cancelOrder"]

    assert answer["__typename"] == "OrderPayload", answer
    assert answer["order"]["status"] == "CANCELLED"
    assert elapsed < WITHIN, elapsed
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_a_sync_the_provider_never_answers_is_a_provider_error_and_changes_nothing(
        api: Api, emulator: LocalStripe, browser: Customer) -> None:
    product, customer, order = await pending_order(api, "sync-hang")
    await browser.pay_directly(order["payment"]["intentId"])  # paid; the webhook was missed

    with frozen(emulator):
        answer, elapsed = await timed(api.gql(SYNC, {"id": order["id"]}, token=customer))
    answer = answer["syncPayment"]

    assert provider_error(answer), answer
    assert elapsed < WITHIN, elapsed
    assert status_of(api, order["id"]) == ("PAYMENT_PENDING", None)
    again = (await api.gql(SYNC, {"id": order["id"]}, token=customer))["syncPayment"]
    assert again["order"]["status"] == "PAID", again
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_a_webhook_while_the_provider_hangs_is_503_in_time_and_claims_nothing(
        api: Api, emulator: LocalStripe, browser: Customer) -> None:
    """A webhook is a signal: its intent is read again from the provider first (README, "The
    webhook"). With the provider hung that read gives up at the deadline and the delivery is
    refused (503), so Stripe delivers it again; nothing was claimed, and the redelivery
    refunds the second payment once."""
    product, order = await paid_order(api, browser, "webhook-hang")
    # A second intent of ours for the same order, paid: its money goes back.
    ours = StripeGateway("sk_test_second", installation_id=api.deps.installation_id,
                         api_base=emulator.api_base)
    second = await ours.create_intent(order_id=int(order["id"]), amount=Money(3000, "usd"),
                                      idempotency_key="second-tab")
    await ours.aclose()
    await browser.pay_directly(second.id)
    body, headers = signed_webhook(intent_event("payment_intent.succeeded",
                                                await browser.intent(second.id)))

    with frozen(emulator):
        response, elapsed = await timed(api.client.post("/webhooks/stripe", content=body,
                                                        headers=headers))

    assert response.status_code == 503, response.text
    assert elapsed < WITHIN, elapsed
    url = api.settings.database_url
    assert rows(url, "SELECT intent_id FROM owed_refunds") == []
    assert await browser.refunds_of(second.id) == []

    again = await api.client.post("/webhooks/stripe", content=body, headers=headers)
    assert again.status_code == 200, again.text
    assert len(await browser.refunds_of(second.id)) == 1
    assert status_of(api, order["id"]) == ("PAID", None)
    assert stock_invariant_violations(url, {int(product): 5}) == []


async def test_the_sweep_command_gives_up_on_a_hung_provider_within_one_deadline(
        api: Api, emulator: LocalStripe) -> None:
    """Two expired orders: the first expiry waits the deadline and is backed off; the pass
    then stops asking (the provider is not answering), so the second is left as it was, not
    backed off for an attempt never made; both expire once the provider is back."""
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="sweep-hang", price_cents=900, stock=5)
    customer = await api.register("sweep-hang@example.com")
    for _ in range(2):
        assert (await api.checkout(customer, [(product, 1)]))["order"]["status"] == \
            "PAYMENT_PENDING"
    url = api.settings.database_url
    with psycopg_connection(url) as conn:
        conn.execute("UPDATE orders SET reserved_until = now() - interval '1 minute'")
    env = {**os.environ, "DATABASE_URL": url, "ORDERGRAPH_ENV": "test",
           "STRIPE_SECRET_KEY": "sk_test_sweep", "STRIPE_API_BASE": emulator.api_base,
           "PAYMENT_PROVIDER_DEADLINE": f"{DEADLINE.total_seconds():g}s",
           "LOG_LEVEL": "WARNING"}

    def run_sweep() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ordergraph.cli", "sweep"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=30,
                              check=False)

    with frozen(emulator):
        started = time.monotonic()
        swept = await asyncio.to_thread(run_sweep)
        elapsed = time.monotonic() - started

    assert swept.returncode == 1, swept.stderr  # errors: the expiries wait for later
    assert swept.stderr.count("error: order") == 1, swept.stderr  # the one that hung
    assert "the rest of this pass waits for the next" in swept.stderr
    assert "not tried" not in swept.stderr  # the second was not asked for at all
    # The process's start-up plus one deadline, not one per order (nor the SDK's 45 s).
    assert elapsed < 10, elapsed
    assert rows(url, "SELECT DISTINCT status FROM orders") == [("PAYMENT_PENDING",)]
    # Only the order whose call hung is backed off.
    assert sorted(rows(url, "SELECT sweep_attempts FROM orders")) == [(0,), (1,)]
    with psycopg_connection(url) as conn:  # past the backoff
        conn.execute("UPDATE orders SET sweep_next_at = now() - interval '1 second'")
    again = await asyncio.to_thread(run_sweep)
    assert again.returncode == 0, again.stderr
    assert rows(url, "SELECT DISTINCT status FROM orders") == [("CANCELLED",)]
    assert stock_invariant_violations(url, {int(product): 5}) == []


@contextlib.contextmanager
def psycopg_connection(url: str) -> Iterator[Any]:
    import psycopg

    from tests.support import psycopg_dsn

    with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
        yield conn
