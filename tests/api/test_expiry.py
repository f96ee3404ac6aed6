"""Unpaid orders give their stock back by themselves (the sweeper)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.domain.services import sweeper
from ordergraph.domain.services.sweeper import sweep
from ordergraph.web.app import Overrides
from tests.support import (
    STOCK,
    Api,
    Customer,
    execute,
    rows,
    running_api,
    settings_for,
    stock_invariant_violations,
)


@pytest.fixture
async def timed_api(pg_url: str, stripe_emulator: LocalStripe,
                    clock: OffsetClock) -> AsyncIterator[Api]:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            reservation_ttl=timedelta(minutes=15))
    async with running_api(settings, Overrides(clock=clock, run_sweeper=False)) as api:
        yield api


async def order_status(api: Api, order_id: str, token: str) -> str:
    data = await api.gql("query($id: ID!) { order(id: $id) { status } }", {"id": order_id},
                         token=token)
    return data["order"]["status"]


async def run_sweep(api: Api):
    s = api.deps
    return await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)


async def test_an_unpaid_order_expires_and_releases_its_stock(
        timed_api: Api, clock: OffsetClock, customer_side: Customer) -> None:
    api = timed_api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="fleeting", stock=3)
    customer = await api.register("forgetful@example.com")
    order = (await api.checkout(customer, [(product, 3)]))["order"]

    early = await run_sweep(api)
    assert early.expired == 0
    clock.advance(timedelta(minutes=15, seconds=1))
    report = await run_sweep(api)

    assert report.expired == 1
    assert report.errors == []
    assert await order_status(api, order["id"], customer) == "CANCELLED"
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 3, "reserved": 0}
    intent = await customer_side.intent(order["payment"]["intentId"])
    assert intent["status"] == "canceled"
    (actor, reason), = rows(api.settings.database_url,
                            "SELECT actor_kind, after->>'reason' FROM audit_log WHERE "
                            "after->>'status' = 'CANCELLED'")
    assert (actor, reason) == ("SYSTEM", "reservation expired")
    assert (await run_sweep(api)).changed == 0  # nothing left to do
    assert stock_invariant_violations(api.settings.database_url, {int(product): 3}) == []


async def test_a_backlog_larger_than_a_batch_goes_back_on_sale_in_one_pass(
        timed_api: Api, clock: OffsetClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # A flash sale's abandoned carts expire together: a pass lists them a batch at a time
    # until none is due (here batches of 3 and at most 3 rounds), not one batch per interval.
    monkeypatch.setattr(sweeper, "MAX_EXPIRY_ROUNDS", 3)
    api = timed_api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="sold-out", stock=11)
    customers = [await api.register(f"abandoned-{i}@example.com") for i in range(11)]
    for customer in customers:
        await api.checkout(customer, [(product, 1)])
    clock.advance(timedelta(minutes=15, seconds=1))

    first = await sweep(uow=api.deps.uow(), gateways=api.deps.gateway, clock=api.deps.clock,
                        batch=3)

    assert (first.expired, first.more_due, first.errors) == (9, True, [])
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 9, "reserved": 2}
    rest = await sweep(uow=api.deps.uow(), gateways=api.deps.gateway, clock=api.deps.clock,
                       batch=3)
    assert (rest.expired, rest.more_due) == (2, False)
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 11, "reserved": 0}
    assert stock_invariant_violations(api.settings.database_url, {int(product): 11}) == []


async def test_the_apps_sweeper_catches_up_without_waiting_the_interval(
        pg_url: str, stripe_emulator: LocalStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 2, one per pass: the backlog of 5 takes three passes, which would be an hour
    # apart at this interval; the app's sweeper runs the next pass at once when the last one
    # left expiries due.
    monkeypatch.setattr(sweeper, "MAX_EXPIRY_ROUNDS", 1)
    monkeypatch.setattr(sweeper, "BATCH", 2)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            reservation_ttl=timedelta(seconds=1),
                            sweep_interval=timedelta(minutes=30))
    async with running_api(settings, Overrides(run_sweeper=False)) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="backlog", stock=5)
        for i in range(5):
            await api.checkout(await api.register(f"late-{i}@example.com"), [(product, 1)])
    await asyncio.sleep(1.2)
    async with running_api(settings, Overrides(run_sweeper=True)) as api:
        for _ in range(100):
            if rows(pg_url, "SELECT available FROM inventory") == [(5,)]:
                break
            await asyncio.sleep(0.1)
        assert rows(pg_url, "SELECT status, count(*) FROM orders GROUP BY status") == \
            [("CANCELLED", 5)]
        assert rows(pg_url, "SELECT available, reserved FROM inventory") == [(5, 0)]


async def test_a_payment_that_succeeded_before_expiry_wins(
        timed_api: Api, clock: OffsetClock, customer_side: Customer) -> None:
    api = timed_api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="just-in-time", stock=2)
    customer = await api.register("last-second@example.com")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    await customer_side.pay_directly(order["payment"]["intentId"])  # webhook not yet here

    clock.advance(timedelta(minutes=16))
    report = await run_sweep(api)

    assert (report.paid_at_expiry, report.expired) == (1, 0)
    assert await order_status(api, order["id"], customer) == "PAID"
    assert stock_invariant_violations(api.settings.database_url, {int(product): 2}) == []


async def test_abandoned_checkouts_expire_with_their_reservation(timed_api: Api,
                                                                 clock: OffsetClock) -> None:
    """A CREATED order whose payment was never recorded (a crash between the two steps)
    carries the reservation deadline its first transaction gave it, and expires with it."""
    api = timed_api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="stuck", stock=5)
    customer = await api.register("crashed@example.com")
    order = (await api.checkout(customer, [(product, 2)]))["order"]
    url = api.settings.database_url
    intent_id = order["payment"]["intentId"]
    # Put the order back the way a crash after transaction 1 would have left it: the intent
    # exists at the provider, but the order does not know it.
    execute(url, "UPDATE orders SET status = 'CREATED', payment_provider = NULL, "
                 "payment_intent_id = NULL, payment_client_secret = NULL, "
                 "payment_status = NULL, reserved_until = created_at + interval '15 minutes' "
                 "WHERE id = %s", (int(order["id"]),))

    assert (await run_sweep(api)).abandoned == 0  # its reservation still runs
    clock.advance(timedelta(minutes=16))
    assert (await run_sweep(api)).abandoned == 1

    assert await order_status(api, order["id"], customer) == "CANCELLED"
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 5, "reserved": 0}
    # The intent opened for it (found again by its idempotency key) can no longer be paid.
    found = await api.deps.gateway.retrieve_intent(intent_id)
    assert found.status == "canceled"


async def test_the_app_sweeps_by_itself(pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            reservation_ttl=timedelta(seconds=1),
                            sweep_interval=timedelta(milliseconds=300))
    async with running_api(settings, Overrides(run_sweeper=True)) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="ticking", stock=1)
        customer = await api.register("idle@example.com")
        order = (await api.checkout(customer, [(product, 1)]))["order"]
        for _ in range(50):
            if await order_status(api, order["id"], customer) == "CANCELLED":
                break
            await asyncio.sleep(0.1)
        assert await order_status(api, order["id"], customer) == "CANCELLED"


async def test_ordergraph_sweep_does_one_pass(pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            reservation_ttl=timedelta(seconds=1))
    async with running_api(settings) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="cron", stock=1)
        customer = await api.register("cron@example.com")
        await api.checkout(customer, [(product, 1)])
    await asyncio.sleep(1.2)
    env = {**os.environ, "DATABASE_URL": pg_url, "STRIPE_API_BASE": stripe_emulator.api_base}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ordergraph.cli", "sweep"], env=env,
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sweep: 1 expired")
    assert rows(pg_url, "SELECT status FROM orders") == [("CANCELLED",)]


async def test_a_mismatched_payment_refunded_before_we_heard_of_it_expires_and_frees_stock(
        timed_api: Api, clock: OffsetClock, customer_side: Customer) -> None:
    """The intent's currency was changed at the provider, the customer paid, and the shop
    refunded it in full in the dashboard, no webhook heard: at expiry the sweeper finds a
    payment that can never be the order's and holds no money, so the order ends FAILED with
    its stock back on sale, not PAYMENT_PENDING with its stock held on every pass."""
    api = timed_api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="mismatch-refunded", price_cents=1250,
                                       stock=4)
    customer = await api.register("mismatch-refunded@example.com")
    order = (await api.checkout(customer, [(product, 2)]))["order"]
    intent_id = order["payment"]["intentId"]
    await customer_side.client.v1.payment_intents.update_async(  # type: ignore[attr-defined]
        intent_id, params={"currency": "eur"})
    await customer_side.pay_directly(intent_id)
    await customer_side.client.v1.refunds.create_async(  # type: ignore[attr-defined]
        params={"payment_intent": intent_id})
    clock.advance(timedelta(minutes=15, seconds=1))

    await run_sweep(api)

    url = api.settings.database_url
    assert rows(url, "SELECT status, refund_status FROM orders WHERE id = %s",
                (int(order["id"]),)) == [("FAILED", "SUCCEEDED")]
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 4, "reserved": 0}
    assert rows(url, "SELECT count(*) FROM owed_refunds") == [(0,)]  # nothing more to send
    assert stock_invariant_violations(url, {int(product): 4}) == []
