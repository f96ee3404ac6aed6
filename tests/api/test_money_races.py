"""Money under races: each test is one hole an outside review found (issue 10), raced or
replayed through the public API against PostgreSQL and the real SDK on the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.adapters.stripe.gateway import StripeGateway
from ordergraph.db import migrate
from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.model import Money
from ordergraph.domain.services.sweeper import sweep
from ordergraph.web.app import Overrides
from tests.support import (
    CARD_OK,
    CHECKOUT,
    FULFILL,
    PAY,
    REFUND,
    Api,
    Customer,
    intent_event,
    rows,
    running_api,
    settings_for,
    signed_webhook,
    stock_invariant_violations,
)


class ControlledGateway(StripeGateway):
    """The real gateway, with switches: refunds that wait for a signal or fail, cancels that
    fail for chosen intents."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.refund_gate: asyncio.Event | None = None
        self.refund_started = asyncio.Event()
        self.refunds_fail = False
        self.refunds_declined = False
        self.uncancellable: set[str] = set()
        self.status_reads_fail = False

    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        self.refund_started.set()
        if self.refund_gate is not None:
            await self.refund_gate.wait()
        if self.refunds_fail:
            raise PaymentFailed.provider_error()
        if self.refunds_declined:
            raise PaymentFailed.declined("The charge is disputed.", None)
        return await super().refund(intent_id, idempotency_key=idempotency_key)

    async def retrieve_intent(self, intent_id: str):  # type: ignore[override]
        if self.status_reads_fail:
            raise PaymentFailed.provider_error()
        return await super().retrieve_intent(intent_id)

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str):  # type: ignore[override]
        if intent_id in self.uncancellable:
            raise PaymentFailed.provider_error()
        return await super().cancel_intent(intent_id, idempotency_key=idempotency_key)


@pytest.fixture
async def controlled(pg_url: str, stripe_emulator: LocalStripe,
                     clock: OffsetClock) -> AsyncIterator[tuple[Api, ControlledGateway]]:
    gateway = ControlledGateway("sk_test_controlled", api_base=stripe_emulator.api_base)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(gateway=gateway, clock=clock,
                                               run_sweeper=False)) as api:
        yield api, gateway
    await gateway.aclose()


async def paid_order(api: Api, admin: str, customer_side: Customer, *, sku: str,
                     stock: int = 5) -> tuple[str, str, dict]:
    product = await api.create_product(admin, sku=sku, price_cents=1500, stock=stock)
    customer = await api.register(f"{sku}@example.com")
    order = (await api.checkout(customer, [(product, 2)]))["order"]
    method = await customer_side.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert paid["order"]["status"] == "PAID", paid
    return product, customer, paid["order"]


def run_sweep(api: Api, **kwargs: object):  # type: ignore[no-untyped-def]
    s = api.deps
    return sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock, **kwargs)  # type: ignore[arg-type]


# ---- 1. refund racing fulfil ----------------------------------------------------------------


async def test_a_refund_under_way_blocks_fulfilment(
        controlled: tuple[Api, ControlledGateway], customer_side: Customer) -> None:
    api, gateway = controlled
    admin = await api.create_admin()
    product, _, order = await paid_order(api, admin, customer_side, sku="refund-first")
    gateway.refund_gate = asyncio.Event()

    refunding = asyncio.create_task(api.gql(REFUND, {"id": order["id"]}, token=admin))
    await asyncio.wait_for(gateway.refund_started.wait(), 10)  # recorded, provider called
    fulfil = (await api.gql(FULFILL, {"id": order["id"]}, token=admin))["fulfillOrder"]
    gateway.refund_gate.set()
    refunded = (await refunding)["refundOrder"]

    assert (fulfil["code"], fulfil["from"], fulfil["to"]) == \
        ("INVALID_TRANSITION", "PAID", "FULFILLED")
    assert "refund" in fulfil["message"]
    assert refunded["order"]["status"] == "REFUNDED"
    assert len(await customer_side.refunds_of(order["payment"]["intentId"])) == 1
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_a_second_refund_while_one_is_under_way_answers_its_outcome(
        controlled: tuple[Api, ControlledGateway], customer_side: Customer) -> None:
    """A double click on Refund: the second call waits for the first one's answer rather
    than answering PAID, which said nothing had been refunded."""
    api, gateway = controlled
    admin = await api.create_admin()
    product, _, order = await paid_order(api, admin, customer_side, sku="refund-twice")
    gateway.refund_gate = asyncio.Event()

    first = asyncio.create_task(api.gql(REFUND, {"id": order["id"]}, token=admin))
    await asyncio.wait_for(gateway.refund_started.wait(), 10)  # recorded, provider called
    second = asyncio.create_task(api.gql(REFUND, {"id": order["id"]}, token=admin))
    await asyncio.sleep(0.5)
    assert not second.done(), second.result()  # no answer before the provider's
    gateway.refund_gate.set()
    answers = [(await first)["refundOrder"], (await second)["refundOrder"]]

    assert [answer["order"]["status"] for answer in answers] == ["REFUNDED", "REFUNDED"]
    assert len(await customer_side.refunds_of(order["payment"]["intentId"])) == 1
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def two_admins_refund_at_once(api: Api, gateway: ControlledGateway, order_id: str,
                                    admin: str) -> list[dict]:
    """The second refundOrder arrives while the provider has the first one (held until the
    second has waited a while); both answers, the first one's first."""
    gateway.refund_gate = asyncio.Event()
    gateway.refund_started.clear()
    first = asyncio.create_task(api.gql(REFUND, {"id": order_id}, token=admin))
    await asyncio.wait_for(gateway.refund_started.wait(), 10)  # recorded, provider called
    second = asyncio.create_task(api.gql(REFUND, {"id": order_id}, token=admin))
    await asyncio.sleep(0.3)
    gateway.refund_gate.set()
    return [(await first)["refundOrder"], (await second)["refundOrder"]]


async def test_a_second_refund_answers_the_providers_refusal_with_the_first(
        controlled: tuple[Api, ControlledGateway], customer_side: Customer) -> None:
    """Two admins press Refund and the provider refuses: both are told why, the order stays
    PAID with the reason on its payment, and it can still be refunded or shipped."""
    api, gateway = controlled
    admin = await api.create_admin()
    _, _, order = await paid_order(api, admin, customer_side, sku="refund-refused")
    gateway.refunds_declined = True

    answers = await two_admins_refund_at_once(api, gateway, order["id"], admin)

    for answer in answers:
        assert (answer["__typename"], answer["code"]) == ("PaymentError", "PAYMENT_DECLINED")
        assert "The charge is disputed." in answer["message"], answer
    shown = await api.gql("query($id: ID!) { order(id: $id) { status payment { lastError } } }",
                          {"id": order["id"]}, token=admin)
    assert shown["order"]["status"] == "PAID"
    assert shown["order"]["payment"]["lastError"] == \
        "The payment provider refused the refund: The charge is disputed."
    assert await customer_side.refunds_of(order["payment"]["intentId"]) == []
    # Refused is not refunded: a later refund that goes through clears the reason.
    gateway.refunds_declined = False
    refunded = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]
    assert refunded["order"]["status"] == "REFUNDED", refunded
    assert refunded["order"]["payment"]["lastError"] is None


async def test_a_refusal_worded_like_an_earlier_one_still_reaches_the_second_caller(
        controlled: tuple[Api, ControlledGateway], customer_side: Customer) -> None:
    """The provider refuses once (the reason stays on the payment), and again, in the same
    words, while a second admin waits: that admin is told it was refused, not shown PAID as
    if nothing had happened."""
    api, gateway = controlled
    admin = await api.create_admin()
    _, _, order = await paid_order(api, admin, customer_side, sku="refused-twice")
    gateway.refunds_declined = True
    earlier = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]
    assert earlier["code"] == "PAYMENT_DECLINED", earlier

    answers = await two_admins_refund_at_once(api, gateway, order["id"], admin)

    for answer in answers:
        assert (answer["__typename"], answer["code"]) == ("PaymentError", "PAYMENT_DECLINED")
        assert answer["message"] == earlier["message"]
    assert await customer_side.refunds_of(order["payment"]["intentId"]) == []


async def test_a_second_refund_answers_a_provider_error_when_the_first_gets_none(
        pg_url: str, stripe_emulator: LocalStripe, customer_side: Customer) -> None:
    gateway = ControlledGateway("sk_test_controlled", api_base=stripe_emulator.api_base)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            payment_provider_deadline=timedelta(seconds=1))
    async with running_api(settings, Overrides(gateway=gateway, run_sweeper=False)) as api:
        admin = await api.create_admin()
        _, _, order = await paid_order(api, admin, customer_side, sku="refund-hangs")
        gateway.refund_gate = asyncio.Event()  # the provider hangs past the deadline
        first = asyncio.create_task(api.gql(REFUND, {"id": order["id"]}, token=admin))
        await asyncio.wait_for(gateway.refund_started.wait(), 10)
        second = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]
        first_answer = (await first)["refundOrder"]
        gateway.refund_gate.set()
        status = await api.gql("query($id: ID!) { order(id: $id) { status } }",
                               {"id": order["id"]}, token=admin)
    await gateway.aclose()

    assert (first_answer["__typename"], first_answer["code"]) == \
        ("PaymentError", "PAYMENT_PROVIDER_ERROR")
    assert (second["__typename"], second["code"]) == ("PaymentError", "PAYMENT_PROVIDER_ERROR")
    assert "under way" in second["message"]
    assert status["order"]["status"] == "PAID"  # the request stays: the sweeper finishes it


async def test_refund_and_fulfil_sent_together_never_both_happen(
        api: Api, admin: str, customer_side: Customer) -> None:
    for round_ in range(4):
        _, _, order = await paid_order(api, admin, customer_side, sku=f"race-{round_}")
        refund, fulfil = await asyncio.gather(
            api.gql(REFUND, {"id": order["id"]}, token=admin),
            api.gql(FULFILL, {"id": order["id"]}, token=admin))
        winners = [r for r in (refund["refundOrder"], fulfil["fulfillOrder"])
                   if r["__typename"] == "OrderPayload"]
        assert len(winners) == 1, (refund, fulfil)
        (status,), = rows(api.settings.database_url,
                          "SELECT status FROM orders WHERE id = %s", (int(order["id"]),))
        refunds = await customer_side.refunds_of(order["payment"]["intentId"])
        assert (status, len(refunds)) in (("REFUNDED", 1), ("FULFILLED", 0))


# ---- 2. a second Pay on a paid order ----------------------------------------------------------


async def test_pay_after_the_provider_already_took_the_money_settles_as_paid(
        api: Api, admin: str, customer_side: Customer) -> None:
    """Pay pressed again before the webhook (another tab, after 3-D Secure): not a decline."""
    product = await api.create_product(admin, sku="twice", price_cents=1500, stock=5)
    customer = await api.register("twice@example.com")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)  # the first press went through out there
    method = await customer_side.card(CARD_OK)

    again = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]

    assert again["__typename"] == "PayOrderPayload", again
    assert again["order"]["status"] == "PAID"
    assert await customer_side.refunds_of(intent_id) == []
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_pay_pressed_twice_at_once_charges_once_and_never_declines(
        api: Api, admin: str, customer_side: Customer) -> None:
    product = await api.create_product(admin, sku="double-click", price_cents=1500, stock=5)
    customer = await api.register("double@example.com")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    methods = [await customer_side.card(CARD_OK), await customer_side.card(CARD_OK)]

    answers = await asyncio.gather(*(
        api.gql(PAY, {"id": order["id"], "pm": method}, token=customer) for method in methods))

    for answer in answers:
        result = answer["payOrder"]
        assert result.get("code") != "PAYMENT_DECLINED", result
        assert result["__typename"] in ("PayOrderPayload", "InvalidTransitionError"), result
    (status,), = rows(api.settings.database_url, "SELECT status FROM orders")
    assert status == "PAID"
    assert await customer_side.refunds_of(order["payment"]["intentId"]) == []


async def test_pay_after_the_browser_paid_is_no_decline_even_when_the_status_is_unreadable(
        controlled: tuple[Api, ControlledGateway], customer_side: Customer) -> None:
    api, gateway = controlled
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="unreadable", price_cents=1500, stock=5)
    customer = await api.register("unreadable@example.com")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    await customer_side.pay_directly(order["payment"]["intentId"])
    gateway.status_reads_fail = True
    method = await customer_side.card(CARD_OK)

    first = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    gateway.status_reads_fail = False
    second = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]

    assert first["code"] == "PAYMENT_PROVIDER_ERROR", first  # unknown: retry, not declined
    assert second["order"]["status"] == "PAID", second


# ---- 4. the sweeper's head of line ------------------------------------------------------------


async def test_orders_that_keep_failing_to_expire_do_not_block_the_rest(
        controlled: tuple[Api, ControlledGateway], clock: OffsetClock) -> None:
    api, gateway = controlled
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="hol", stock=10)
    orders = []
    for number in range(4):
        customer = await api.register(f"hol{number}@example.com")
        orders.append((await api.checkout(customer, [(product, 1)]))["order"])
    # The three oldest can never be cancelled at the provider.
    gateway.uncancellable = {o["payment"]["intentId"] for o in orders[:3]}
    clock.advance(timedelta(minutes=16))

    first = await run_sweep(api, batch=2)
    second = await run_sweep(api, batch=2)

    assert (first.expired, len(first.errors)) == (0, 2)
    assert second.expired == 1  # the healthy one got its turn
    status = dict(rows(api.settings.database_url, "SELECT id, status FROM orders"))
    assert status[int(orders[3]["id"])] == "CANCELLED"
    attempts = dict(rows(api.settings.database_url, "SELECT id, sweep_attempts FROM orders"))
    assert [attempts[int(o["id"])] for o in orders] == [1, 1, 1, 0]
    # Backed off: the next pass leaves them alone until their retry time.
    assert (await run_sweep(api, batch=2)).errors == []
    clock.advance(timedelta(minutes=1))
    gateway.uncancellable = set()
    assert (await run_sweep(api, batch=10)).expired == 3


# ---- 5. a second payment whose refund fails ---------------------------------------------------


async def test_a_failing_refund_of_a_second_payment_is_owed_and_retried(
        controlled: tuple[Api, ControlledGateway], customer_side: Customer,
        clock: OffsetClock) -> None:
    api, gateway = controlled
    admin = await api.create_admin()
    product, _, order = await paid_order(api, admin, customer_side, sku="second")
    # A second intent of ours for the same order (an old tab, a retried checkout), paid.
    second = await gateway.create_intent(order_id=int(order["id"]),
                                         amount=Money(3000, "usd"), idempotency_key="again")
    await customer_side.pay_directly(second.id)
    gateway.refunds_fail = True

    body, headers = signed_webhook(intent_event("payment_intent.succeeded",
                                                await customer_side.intent(second.id)))
    response = await api.client.post("/webhooks/stripe", content=body, headers=headers)

    assert (response.status_code, response.json()["outcome"]) == (200, "refund_required")
    url = api.settings.database_url
    assert rows(url, "SELECT intent_id, status, attempts FROM owed_refunds") == \
        [(second.id, "OWED", 1)]
    assert await customer_side.refunds_of(second.id) == []

    gateway.refunds_fail = False
    assert (await run_sweep(api)).refunds_retried == 0  # backing off
    clock.advance(timedelta(minutes=1))
    assert (await run_sweep(api)).refunds_retried == 1
    assert rows(url, "SELECT status FROM owed_refunds") == [("SUCCEEDED",)]
    assert len(await customer_side.refunds_of(second.id)) == 1
    assert await customer_side.refunds_of(order["payment"]["intentId"]) == []
    (status,), = rows(url, "SELECT status FROM orders")
    assert status == "PAID"  # the order keeps its first payment
    assert stock_invariant_violations(url, {int(product): 5}) == []


# ---- 6. two shops on one Stripe account -------------------------------------------------------


async def test_two_shops_on_one_account_ignore_each_others_payments(
        pg_url: str, fresh_pg_database: str, stripe_emulator: LocalStripe,
        customer_side: Customer) -> None:
    migrate.upgrade(fresh_pg_database)
    base = stripe_emulator.api_base
    async with running_api(settings_for(pg_url, stripe_api_base=base)) as shop_a, \
            running_api(settings_for(fresh_pg_database, stripe_api_base=base)) as shop_b:
        assert shop_a.deps.installation_id != shop_b.deps.installation_id
        orders = []
        for shop in (shop_a, shop_b):
            admin = await shop.create_admin()
            product = await shop.create_product(admin, sku="same", stock=3)
            customer = await shop.register("same@example.com")
            orders.append((await shop.checkout(customer, [(product, 1)]))["order"])
        order_a, order_b = orders
        assert order_a["id"] == order_b["id"]  # the same order number in both shops...
        assert order_a["payment"]["intentId"] != order_b["payment"]["intentId"]  # ...own intents

        await customer_side.pay_directly(order_a["payment"]["intentId"])
        event = intent_event("payment_intent.succeeded",
                             await customer_side.intent(order_a["payment"]["intentId"]))
        body, headers = signed_webhook(event)
        answer_b = await shop_b.client.post("/webhooks/stripe", content=body, headers=headers)
        answer_a = await shop_a.client.post("/webhooks/stripe", content=body, headers=headers)

        assert answer_b.json()["outcome"] == "unknown_intent"
        assert answer_a.json()["outcome"] == "applied"
        assert rows(fresh_pg_database, "SELECT status, refund_status FROM orders") == \
            [("PAYMENT_PENDING", None)]
        assert rows(pg_url, "SELECT status FROM orders") == [("PAID",)]


# ---- 8. reservation hoarding ------------------------------------------------------------------


async def test_the_per_product_cap_holds_across_duplicate_lines(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="hoard", stock=5000)
    customer = await api.register("hoarder@example.com")
    result = await api.checkout(customer, [(product, 600), (product, 600)])
    assert (result["code"], result["field"]) == ("VALIDATION_FAILED", "items.0.quantity")
    assert rows(api.settings.database_url, "SELECT count(*) FROM orders") == [(0,)]


async def test_one_customer_cannot_hold_more_unpaid_orders_than_allowed(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            max_unpaid_orders=2, max_unpaid_units=10)
    async with running_api(settings) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="flash", stock=100)
        customer = await api.register("hoarder@example.com")

        answers = await asyncio.gather(*(api.gql(CHECKOUT, {"input": {
            "items": [{"productId": product, "quantity": 1}]}}, token=customer)
            for _ in range(5)))

        kinds = sorted(a["checkout"]["__typename"] for a in answers)
        assert kinds == ["CheckoutPayload"] * 2 + ["TooManyOpenOrdersError"] * 3
        refused = next(a["checkout"] for a in answers
                       if a["checkout"]["__typename"] != "CheckoutPayload")
        assert refused["code"] == "TOO_MANY_OPEN_ORDERS"
        # Units count too, and another customer is not affected.
        other = await api.register("other@example.com")
        too_many = await api.checkout(other, [(product, 11)])
        assert too_many["code"] == "TOO_MANY_OPEN_ORDERS"
        assert (await api.checkout(other, [(product, 10)]))["order"]["status"] == \
            "PAYMENT_PENDING"
        assert stock_invariant_violations(pg_url, {int(product): 100}) == []
