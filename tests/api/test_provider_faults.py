"""A slow, forgetful or half-answering payment provider (issue 15, items 4 to 7): checkouts
end cleanly within their deadline, half-done checkouts and payments can be finished by their
customer, and a payment the provider forgot closes its order instead of being retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.adapters.stripe.gateway import StripeGateway
from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.model import Money
from ordergraph.domain.ports import PaymentIntent
from ordergraph.domain.services.sweeper import sweep
from ordergraph.web.app import Overrides
from tests.support import (
    CARD_OK,
    PAY,
    SYNC,
    Api,
    Customer,
    execute,
    rows,
    running_api,
    settings_for,
    stock_invariant_violations,
)


class FaultyGateway(StripeGateway):
    """The real gateway; opening a payment can hang, and a confirmation's answer can be lost
    after the provider did the work."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hang_on_create = False
        self.create_entered = asyncio.Event()
        self.lose_confirm_answers = False

    async def create_intent(self, *, order_id: int, amount: Money, idempotency_key: str,
                            **details: Any) -> PaymentIntent:
        self.create_entered.set()
        if self.hang_on_create:
            await asyncio.sleep(60)
        return await super().create_intent(order_id=order_id, amount=amount,
                                           idempotency_key=idempotency_key, **details)

    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent:
        intent = await super().confirm_intent(intent_id, payment_method_id=payment_method_id,
                                              idempotency_key=idempotency_key)
        if self.lose_confirm_answers:
            raise PaymentFailed.provider_error()  # charged out there; the answer never came
        return intent


@pytest.fixture
async def faulty(pg_url: str, stripe_emulator: LocalStripe,
                 clock: OffsetClock) -> AsyncIterator[tuple[Api, FaultyGateway]]:
    gateway = FaultyGateway("sk_test_faulty", api_base=stripe_emulator.api_base)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            payment_provider_deadline=timedelta(seconds=1))
    async with running_api(settings, Overrides(gateway=gateway, clock=clock,
                                               run_sweeper=False)) as api:
        yield api, gateway
    await gateway.aclose()


async def shop(api: Api, sku: str, stock: int = 5) -> tuple[str, str]:
    admin = await api.create_admin()
    product = await api.create_product(admin, sku=sku, price_cents=1200, stock=stock)
    return product, await api.register(f"{sku}@example.com")


# ---- 4. a slow provider and a deploy ----------------------------------------------------------


async def test_a_hung_provider_costs_a_checkout_its_deadline_not_more(
        faulty: tuple[Api, FaultyGateway]) -> None:
    api, gateway = faulty
    product, customer = await shop(api, "slow")
    gateway.hang_on_create = True

    started = time.monotonic()
    result = await api.checkout(customer, [(product, 2)])
    elapsed = time.monotonic() - started

    assert result["code"] == "PAYMENT_PROVIDER_ERROR"
    assert elapsed < 5, elapsed  # the deadline is 1 s; the hang would be 60 s
    assert rows(api.settings.database_url, "SELECT status FROM orders") == [("CANCELLED",)]
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_a_checkout_cancelled_mid_call_still_releases_its_stock(
        faulty: tuple[Api, FaultyGateway]) -> None:
    """A shutdown past its grace cancels the request: the cleanup is shielded and finishes."""
    api, gateway = faulty
    product, customer = await shop(api, "deploy")
    gateway.hang_on_create = True

    request = asyncio.create_task(api.checkout(customer, [(product, 2)]))
    await asyncio.wait_for(gateway.create_entered.wait(), 10)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    url = api.settings.database_url
    deadline = time.monotonic() + 10
    while rows(url, "SELECT status FROM orders") != [("CANCELLED",)]:
        assert time.monotonic() < deadline, rows(url, "SELECT status FROM orders")
        await asyncio.sleep(0.05)
    assert stock_invariant_violations(url, {int(product): 5}) == []


def test_the_provider_deadline_must_fit_in_the_graceful_shutdown() -> None:
    from ordergraph.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="PAYMENT_PROVIDER_DEADLINE"):
        Settings.from_env({"PAYMENT_PROVIDER_DEADLINE": "30s", "SHUTDOWN_TIMEOUT": "10s"},
                          dotenv_path=None)
    fine = Settings.from_env({"PAYMENT_PROVIDER_DEADLINE": "20s", "SHUTDOWN_TIMEOUT": "25s"},
                             dotenv_path=None)
    assert fine.shutdown_timeout == timedelta(seconds=25)


# ---- 5. a half-done checkout, resumed by its customer -----------------------------------------


async def test_replaying_the_key_of_a_half_done_checkout_finishes_it(
        faulty: tuple[Api, FaultyGateway]) -> None:
    api, _ = faulty
    product, customer = await shop(api, "resume")
    first = await api.checkout(customer, [(product, 2)], key="cart-1")
    intent_id = first["order"]["payment"]["intentId"]
    # Back to what a crash between checkout's transactions leaves: CREATED, no payment.
    execute(api.settings.database_url,
            "UPDATE orders SET status = 'CREATED', payment_provider = NULL, "
            "payment_intent_id = NULL, payment_client_secret = NULL, payment_status = NULL")

    again = await api.checkout(customer, [(product, 2)], key="cart-1")

    assert again["order"]["id"] == first["order"]["id"]
    assert again["order"]["status"] == "PAYMENT_PENDING"
    assert again["clientSecret"]
    assert again["order"]["payment"]["intentId"] == intent_id  # found by its idempotency key
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


# ---- 6. a payment whose answer was lost -------------------------------------------------------


async def test_a_payment_whose_answer_was_lost_settles_as_paid(
        faulty: tuple[Api, FaultyGateway], customer_side: Customer) -> None:
    api, gateway = faulty
    product, customer = await shop(api, "lost-answer")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    gateway.lose_confirm_answers = True
    method = await customer_side.card(CARD_OK)

    answer = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]

    assert answer["__typename"] == "PayOrderPayload", answer
    assert answer["order"]["status"] == "PAID"
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


# ---- 7. an intent the provider no longer knows ------------------------------------------------


async def test_an_intent_the_provider_forgot_closes_its_order_once(
        faulty: tuple[Api, FaultyGateway], clock: OffsetClock) -> None:
    api, _ = faulty
    product, customer = await shop(api, "forgotten")
    expiring = (await api.checkout(customer, [(product, 1)]))["order"]
    synced = (await api.checkout(customer, [(product, 2)]))["order"]
    url = api.settings.database_url
    for order in (expiring, synced):
        execute(url, "UPDATE orders SET payment_intent_id = %s WHERE id = %s",
                (f"pi_forgotten_{order['id']}", int(order["id"])))

    answer = (await api.gql(SYNC, {"id": synced["id"]}, token=customer))["syncPayment"]
    assert answer["order"]["status"] == "CANCELLED"

    clock.advance(timedelta(minutes=16))
    s = api.deps
    report = await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)
    assert (report.expired, report.errors) == (1, [])
    again = await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)
    assert again.errors == []  # nothing left to retry
    assert rows(url, "SELECT status FROM orders ORDER BY id") == [("CANCELLED",)] * 2
    assert stock_invariant_violations(url, {int(product): 5}) == []
