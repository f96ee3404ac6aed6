"""POST /webhooks/stripe with payloads signed in the tests, and the emulator's own webhooks
delivered to a real server."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
import stripe

from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from ordergraph.adapters.stripe.gateway import StripeGateway
from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.services.sweeper import sweep
from ordergraph.web.app import Overrides
from tests.support import (
    CANCEL,
    CARD_DECLINED,
    CARD_OK,
    PAY,
    REFUND,
    STOCK,
    SYNC,
    TEST_WEBHOOK_SECRET,
    Api,
    Customer,
    execute,
    intent_event,
    live_server,
    rows,
    running_api,
    scalar,
    settings_for,
    signed_webhook,
    stock_invariant_violations,
)


async def post_event(api: Api, event: dict, **sign: object) -> httpx.Response:
    body, headers = signed_webhook(event, **sign)  # type: ignore[arg-type]
    return await api.client.post("/webhooks/stripe", content=body, headers=headers)


async def pending(api: Api, admin: str, sku: str = "widget") -> tuple[str, str, dict]:
    product = await api.create_product(admin, sku=sku, price_cents=1250, stock=4)
    customer = await api.register(f"{sku}@example.com")
    order = (await api.checkout(customer, [(product, 2)]))["order"]
    return product, customer, order


def paid_transitions(url: str, order_id: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM audit_log WHERE entity_type = 'ORDER' AND "
                           "entity_id = %s AND action = 'ORDER_STATUS_CHANGED' AND "
                           "after->>'status' = 'PAID'", (order_id,)))


async def status_of(api: Api, order_id: str, token: str) -> str:
    data = await api.gql("query($id: ID!) { order(id: $id) { status } }", {"id": order_id},
                         token=token)
    return data["order"]["status"]


async def test_a_signed_success_marks_the_order_paid_once(api: Api, admin: str,
                                                          customer_side: Customer) -> None:
    product, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)
    event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))

    first = await post_event(api, event)
    replay = await post_event(api, event)

    assert (first.status_code, first.json()["outcome"]) == (200, "applied")
    assert (replay.status_code, replay.json()["outcome"]) == (200, "duplicate")
    assert await status_of(api, order["id"], customer) == "PAID"
    assert paid_transitions(api.settings.database_url, order["id"]) == 1
    assert stock_invariant_violations(api.settings.database_url, {int(product): 4}) == []


async def test_concurrent_deliveries_of_one_event_apply_it_once(
        api: Api, admin: str, customer_side: Customer) -> None:
    _, _customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)
    event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))

    responses = await asyncio.gather(*[post_event(api, event) for _ in range(5)])

    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["outcome"] for r in responses) == ["applied"] + ["duplicate"] * 4
    assert paid_transitions(api.settings.database_url, order["id"]) == 1
    assert scalar(api.settings.database_url, "SELECT count(*) FROM webhook_events") == 1


async def test_bad_signatures_are_refused_and_change_nothing(api: Api, admin: str,
                                                             customer_side: Customer) -> None:
    _, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)
    event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))
    body, headers = signed_webhook(event)

    attempts = {
        "missing": await api.client.post("/webhooks/stripe", content=body,
                                         headers={"content-type": "application/json"}),
        "forged": await post_event(api, event, secret="whsec_someone_else"),
        "stale": await post_event(api, event, timestamp=int(time.time()) - 3600),
        "tampered": await api.client.post("/webhooks/stripe",
                                          content=body.replace(b"succeeded", b"succeedeX"),
                                          headers=headers),
        "garbage": await api.client.post("/webhooks/stripe", content=b"not json",
                                         headers={"stripe-signature": "t=1,v1=abc"}),
    }
    for name, response in attempts.items():
        assert response.status_code == 400, name
    assert await status_of(api, order["id"], customer) == "PAYMENT_PENDING"
    assert scalar(api.settings.database_url, "SELECT count(*) FROM webhook_events") == 0


async def test_big_bodies_are_refused_with_413(api: Api) -> None:
    response = await api.client.post("/webhooks/stripe", content=b"x" * (1024 * 1024 + 1),
                                     headers={"stripe-signature": "t=1,v1=abc"})
    assert response.status_code == 413


async def test_news_with_a_wrong_amount_is_refused_and_audited(
        api: Api, admin: str, customer_side: Customer) -> None:
    """News of an intent whose amount disagrees with the order never pays it: news is
    refused and recorded; a failure still ends the order (no money moved, and the stock must
    not wait on an intent that can no longer pay it). The app reads the intent again from
    the provider, so the provider's intent is the one that disagrees."""
    product, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.client.v1.payment_intents.update_async(intent_id,
                                                               params={"amount": 100})
    processing = {"id": intent_id, "object": "payment_intent",
                  "status": "processing", "amount": 100, "currency": "usd",
                  "metadata": {"order_id": order["id"]}}
    response = await post_event(api, intent_event("payment_intent.processing", processing))
    assert (response.status_code, response.json()["outcome"]) == (200, "mismatch")
    assert await status_of(api, order["id"], customer) == "PAYMENT_PENDING"
    (reason,), = rows(api.settings.database_url,
                      "SELECT after->>'reason' FROM audit_log WHERE action = "
                      "'ORDER_PAYMENT_UPDATED'")
    assert "amount or currency differ" in reason

    with pytest.raises(stripe.CardError):
        await customer_side.pay_directly(intent_id, CARD_DECLINED)

    response = await post_event(api, intent_event("payment_intent.payment_failed",
                                                  await customer_side.intent(intent_id)))

    assert (response.status_code, response.json()["outcome"]) == (200, "mismatch")
    assert await status_of(api, order["id"], customer) == "FAILED"
    assert stock_invariant_violations(api.settings.database_url, {int(product): 4}) == []


async def test_a_capture_that_disagrees_with_the_order_is_refunded_and_closed(
        api: Api, admin: str, customer_side: Customer) -> None:
    """Money taken in the wrong currency is sent back, the order FAILS with its stock back on
    sale, and nothing is left for the sweeper to retry forever."""
    product, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.client.v1.payment_intents.update_async(
        intent_id, params={"currency": "eur"})  # the provider now disagrees with the order
    await customer_side.pay_directly(intent_id)
    event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))

    response = await post_event(api, event)

    assert (response.status_code, response.json()["outcome"]) == (200, "mismatch")
    assert await status_of(api, order["id"], customer) == "FAILED"
    assert len(await customer_side.refunds_of(intent_id)) == 1
    url = api.settings.database_url
    assert rows(url, "SELECT status, attempts FROM owed_refunds") == [("SUCCEEDED", 1)]
    assert rows(url, "SELECT refund_status FROM orders") == [("SUCCEEDED",)]
    assert stock_invariant_violations(url, {int(product): 4}) == []
    report = await sweep(uow=api.deps.uow(), gateways=api.deps.gateway, clock=api.deps.clock)
    assert (report.changed, report.errors) == (0, [])
    # Told again (a redelivery, syncPayment): nothing more is refunded.
    again = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))
    assert (await post_event(api, again)).json()["outcome"] == "mismatch"
    assert len(await customer_side.refunds_of(intent_id)) == 1


async def test_unknown_intents_and_other_types_are_acknowledged(api: Api) -> None:
    unknown = {"id": "pi_nobody_knows", "object": "payment_intent", "status": "succeeded",
               "amount": 100, "currency": "usd", "metadata": {}}
    response = await post_event(api, intent_event("payment_intent.succeeded", unknown))
    assert (response.status_code, response.json()["outcome"]) == (200, "unknown_intent")
    other = await post_event(api, intent_event("customer.created", {"id": "cus_1"}))
    assert (other.status_code, other.json()["handled"]) == (200, False)


class UnreachableForCancels(StripeGateway):
    """The provider accepts payments but our cancel never reaches it (a network blip)."""

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str):  # type: ignore[override]
        raise PaymentFailed.provider_error()


async def test_success_after_cancel_is_refunded_automatically(
        pg_url: str, stripe_emulator: LocalStripe, customer_side: Customer) -> None:
    gateway = UnreachableForCancels("sk_test_x", api_base=stripe_emulator.api_base)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(gateway=gateway, run_sweeper=False)) as api:
        admin = await api.create_admin()
        product, customer, order = await pending(api, admin)
        intent_id = order["payment"]["intentId"]
        cancelled = (await api.gql(CANCEL, {"id": order["id"]}, token=customer))["cancelOrder"]
        assert cancelled["order"]["status"] == "CANCELLED"
        # The customer's other tab still pays the (uncancelled) intent.
        await customer_side.pay_directly(intent_id)
        event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))

        response = await post_event(api, event)

        assert (response.status_code, response.json()["outcome"]) == (200, "refund_required")
        assert len(await customer_side.refunds_of(intent_id)) == 1
        assert await status_of(api, order["id"], customer) == "CANCELLED"
        (refund_status, refund_id), = rows(pg_url, "SELECT refund_status, refund_id FROM orders")
        assert refund_status == "SUCCEEDED"
        assert refund_id
        reasons = [r for (r,) in rows(pg_url, "SELECT after->>'reason' FROM audit_log WHERE "
                                              "action = 'ORDER_PAYMENT_UPDATED' ORDER BY id")]
        assert reasons == ["payment succeeded after the order was CANCELLED: refunding it",
                           "payment refunded automatically"]
        # A replay of the same news does not refund again.
        assert (await post_event(api, event)).json()["outcome"] == "duplicate"
        other_delivery = intent_event("payment_intent.succeeded",
                                      await customer_side.intent(intent_id))
        assert (await post_event(api, other_delivery)).json()["outcome"] == "unchanged"
        assert len(await customer_side.refunds_of(intent_id)) == 1
        assert stock_invariant_violations(pg_url, {int(product): 4}) == []
        await gateway.aclose()


def declined(intent: dict) -> dict:
    """The intent as a payment_failed event would carry it (back to requires_payment_method
    with the decline), whatever it is now."""
    return {**intent, "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline",
                                   "message": "Your card was declined."}}


async def test_a_stale_failure_after_success_changes_nothing(
        api: Api, admin: str, customer_side: Customer) -> None:
    """Stripe does not order its events: a payment_failed (an earlier attempt's) that arrives
    after the intent succeeded is read against the intent as it is now, and the PAID order
    stays PAID."""
    product, customer, order = await pending(api, admin)
    method = await customer_side.card(CARD_OK)
    await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer)
    intent = await customer_side.intent(order["payment"]["intentId"])
    audit_rows = scalar(api.settings.database_url, "SELECT count(*) FROM audit_log")

    response = await post_event(api, intent_event("payment_intent.payment_failed",
                                                  declined(intent)))

    assert (response.status_code, response.json()["outcome"]) == (200, "unchanged")
    assert await status_of(api, order["id"], customer) == "PAID"
    assert scalar(api.settings.database_url, "SELECT count(*) FROM audit_log") == audit_rows
    assert stock_invariant_violations(api.settings.database_url, {int(product): 4}) == []


async def test_a_stale_failure_before_the_success_event_pays_the_order(
        api: Api, admin: str, customer_side: Customer) -> None:
    """The customer's first card was declined and the second paid (Stripe.js); the failure's
    event arrives first. The order is PAID (the intent succeeded), never FAILED with its
    stock released and then refunded when the success arrives."""
    product, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)
    succeeded = await customer_side.intent(intent_id)

    stale = await post_event(api, intent_event("payment_intent.payment_failed",
                                               declined(succeeded)))
    assert (stale.status_code, stale.json()["outcome"]) == (200, "applied")
    assert await status_of(api, order["id"], customer) == "PAID"
    late = await post_event(api, intent_event("payment_intent.succeeded", succeeded))

    assert (late.status_code, late.json()["outcome"]) == (200, "unchanged")
    assert await status_of(api, order["id"], customer) == "PAID"
    assert paid_transitions(api.settings.database_url, order["id"]) == 1
    assert await customer_side.refunds_of(intent_id) == []
    assert rows(api.settings.database_url, "SELECT count(*) FROM owed_refunds") == [(0,)]
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 2, "reserved": 0}
    assert stock_invariant_violations(api.settings.database_url, {int(product): 4}) == []


async def test_a_signed_success_for_an_unpaid_intent_pays_nothing(
        api: Api, admin: str, customer_side: Customer) -> None:
    """A validly signed payment_intent.succeeded whose intent has taken no money (a payload
    that does not say what the provider holds) leaves the order waiting for its payment."""
    product, customer, order = await pending(api, admin)
    intent = await customer_side.intent(order["payment"]["intentId"])
    assert intent["status"] == "requires_payment_method"

    response = await post_event(api, intent_event("payment_intent.succeeded",
                                                  {**intent, "status": "succeeded"}))

    assert response.status_code == 200
    assert response.json()["outcome"] != "applied"
    assert await status_of(api, order["id"], customer) == "PAYMENT_PENDING"
    assert paid_transitions(api.settings.database_url, order["id"]) == 0
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 2, "reserved": 2}


async def test_webhook_failure_event_fails_a_pending_order(api: Api, admin: str,
                                                           customer_side: Customer) -> None:
    product, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    with pytest.raises(stripe.CardError):
        await customer_side.pay_directly(intent_id, CARD_DECLINED)  # Stripe.js, declined

    await post_event(api, intent_event("payment_intent.payment_failed",
                                       await customer_side.intent(intent_id)))

    assert await status_of(api, order["id"], customer) == "FAILED"
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 4, "reserved": 0}


async def test_webhook_and_sync_racing_make_one_transition(api: Api, admin: str,
                                                           customer_side: Customer) -> None:
    _, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)
    event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))

    webhook, synced = await asyncio.gather(
        post_event(api, event), api.gql(SYNC, {"id": order["id"]}, token=customer))

    assert webhook.status_code == 200
    assert synced["syncPayment"]["order"]["status"] == "PAID"
    assert paid_transitions(api.settings.database_url, order["id"]) == 1


async def test_database_down_means_5xx_so_stripe_retries(
        stripe_emulator: LocalStripe, customer_side: Customer,
        caplog: pytest.LogCaptureFixture) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    async with running_api(settings_for(dead, stripe_api_base=stripe_emulator.api_base,
                                        installation_id="shop")) as api:
        opened = await customer_side.client.v1.payment_intents.create_async(params={
            "amount": 100, "currency": "usd", "payment_method_types": ["card"],
            "metadata": {"order_id": "1", "installation": "shop"}})
        await customer_side.pay_directly(opened.id)  # the provider knows it (it is re-read)
        intent = await customer_side.intent(opened.id)
        response = await post_event(api, intent_event("payment_intent.succeeded", intent))
        assert response.status_code == 503
        assert response.headers["retry-after"]
        # An outage is one warning, not a traceback per delivery.
        assert not [r for r in caplog.records if r.name.startswith("ordergraph.web")
                    and r.exc_info]
        ready = await api.client.get("/readyz")
        assert ready.status_code == 503


async def test_the_emulators_own_webhook_reaches_a_running_server(pg_url: str) -> None:
    """Pay in the 'browser'; Stripe's webhook (signed by the emulator) makes the order PAID.

    The emulator sends each event a second after it happened, to every webhook registered by
    then: a shared emulator would also post earlier tests' payments here (order ids start at 1
    again), and one landing between checkout's two transactions claimed this test's order, so
    checkout cancelled the intent it had opened and paying it answered 400. Hence an emulator
    of its own.
    """
    emulator = LocalStripe.start()
    customer_side = Customer(emulator.api_base)
    try:
        settings = settings_for(pg_url, stripe_api_base=emulator.api_base)
        async with live_server(settings) as (address, app):
            emulator.register_webhook(f"http://{address}/webhooks/stripe", TEST_WEBHOOK_SECRET)
            async with httpx.AsyncClient(base_url=f"http://{address}") as client:
                api = Api(app=app, client=client, settings=settings)
                admin = await api.create_admin()
                _, customer, order = await pending(api, admin)
                await customer_side.pay_directly(order["payment"]["intentId"])
                deadline = time.monotonic() + 30  # sent about a second later; slower under load
                while time.monotonic() < deadline:
                    if await status_of(api, order["id"], customer) == "PAID":
                        break
                    await asyncio.sleep(0.1)
                assert await status_of(api, order["id"], customer) == "PAID"
                actors = rows(pg_url, "SELECT actor_kind FROM audit_log WHERE "
                                      "after->>'status' = 'PAID'")
                assert actors == [("PAYMENT_PROVIDER",)]
    finally:
        await customer_side.aclose()
        emulator.stop()


def refunded_charge(order: dict, *, refunded: bool = True) -> dict:
    return {"id": "ch_1", "object": "charge", "payment_intent": order["payment"]["intentId"],
            "amount": order["total"]["amount"], "currency": "usd", "refunded": refunded,
            "metadata": {}}


async def dashboard_refund(customer_side: Customer, intent_id: str,
                           amount: int | None = None) -> dict:
    """A refund made at the provider (the dashboard), and the charge.refunded Stripe sends:
    the charge as the provider shows it after the refund."""
    params: dict = {"payment_intent": intent_id}
    if amount is not None:
        params["amount"] = amount
    await customer_side.client.v1.refunds.create_async(params=params)  # type: ignore[arg-type]
    charge = (await customer_side.intent(intent_id))["latest_charge"]
    return intent_event("charge.refunded", charge)


async def test_a_refund_made_in_stripes_dashboard_refunds_the_order(
        api: Api, admin: str, customer_side: Customer) -> None:
    product, customer, order = await pending(api, admin)
    intent_id = order["payment"]["intentId"]
    method = await customer_side.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert paid["order"]["status"] == "PAID"

    # A forged "refunded" for a charge the provider has not refunded changes nothing.
    forged = await post_event(api, intent_event("charge.refunded", refunded_charge(paid["order"])))
    assert forged.json()["outcome"] == "unchanged"
    assert await status_of(api, order["id"], customer) == "PAID"
    full = await post_event(api, await dashboard_refund(customer_side, intent_id))

    assert full.json()["outcome"] == "applied"
    assert await status_of(api, order["id"], customer) == "REFUNDED"
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 4, "reserved": 0}  # it had not shipped: back on sale
    assert stock_invariant_violations(api.settings.database_url, {int(product): 4}) == []


async def test_charge_refunded_after_our_own_refund_is_a_no_op(
        api: Api, admin: str, customer_side: Customer) -> None:
    _, customer, order = await pending(api, admin)
    method = await customer_side.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    refunded = await api.gql(REFUND, {"id": order["id"]}, token=admin)
    assert refunded["refundOrder"]["order"]["status"] == "REFUNDED"
    audit_rows = scalar(api.settings.database_url, "SELECT count(*) FROM audit_log")

    late = await post_event(api, intent_event("charge.refunded", refunded_charge(paid["order"])))

    assert (late.status_code, late.json()["outcome"]) == (200, "unchanged")
    assert scalar(api.settings.database_url, "SELECT count(*) FROM audit_log") == audit_rows
    assert len(await customer_side.refunds_of(order["payment"]["intentId"])) == 1


def signed_raw(payload: str) -> tuple[bytes, dict[str, str]]:
    """Any body, signed as Stripe signs (the signature is over the raw bytes)."""
    import stripe

    header = stripe.WebhookSignature.generate_signature_header(
        payload, TEST_WEBHOOK_SECRET, timestamp=int(time.time()))
    return payload.encode(), {"stripe-signature": header, "content-type": "application/json"}


@pytest.mark.parametrize("payload", [
    "[]", "[{}]", '"event"', "1", "null", "true",
    '{"id": "evt_1", "type": "payment_intent.succeeded", "data": []}',
    '{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": []}}',
    '{"id": "evt_1", "type": "charge.refunded", "data": {"object": "ch_1"}}',
])
async def test_a_signed_body_that_is_not_an_event_object_is_400_and_changes_nothing(
        api: Api, payload: str) -> None:
    """A correct signature over JSON that is no event object (Stripe never sends one) is
    refused like any other unreadable body: 400 with the reason, nothing recorded."""
    body, headers = signed_raw(payload)

    response = await api.client.post("/webhooks/stripe", content=body, headers=headers)

    assert response.status_code == 400, response.text
    assert "payload" in response.json()["error"]
    assert scalar(api.settings.database_url, "SELECT count(*) FROM webhook_events") == 0


SALES = """query($from: DateTime!, $to: DateTime!) { salesReport(from: $from, to: $to) {
  grossSales { amount } refunds { amount } revenue { amount } ordersRefunded } }"""
HISTORY = """query($id: ID!) { order(id: $id) { status payment { lastError }
  history { action after } } }"""


async def test_a_partial_dashboard_refund_is_recorded_and_refund_order_returns_the_rest(
        api: Api, admin: str, customer_side: Customer) -> None:
    """A partial refund at the provider leaves the order PAID (the shop still holds the rest),
    on its record; refundOrder then refunds only what is left, and the order is REFUNDED
    once the provider's refunds cover the whole capture, never with money still captured."""
    product, customer, order = await pending(api, admin)
    intent_id, total = order["payment"]["intentId"], order["total"]["amount"]
    method = await customer_side.card(CARD_OK)
    await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer)

    partial = await post_event(api, await dashboard_refund(customer_side, intent_id, 300))

    assert (partial.status_code, partial.json()["outcome"]) == (200, "applied")
    seen = (await api.gql(HISTORY, {"id": order["id"]}, token=admin))["order"]
    assert seen["status"] == "PAID"
    assert seen["payment"]["lastError"] == \
        f"partially refunded at the provider: 300 of {total} usd"
    assert seen["history"][-1]["action"] == "ORDER_PAYMENT_UPDATED"
    assert "partially refunded at the provider (300 of" in seen["history"][-1]["after"]["reason"]

    refunded = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]

    assert refunded["order"]["status"] == "REFUNDED"
    amounts = sorted(r["amount"] for r in await customer_side.refunds_of(intent_id))
    assert amounts == [300, total - 300]
    charge = (await customer_side.intent(intent_id))["latest_charge"]
    assert (charge["amount_refunded"], charge["refunded"]) == (total, True)
    # Stripe's charge.refunded for our own refund of the rest: nothing more to do.
    late = await post_event(api, intent_event("charge.refunded", charge))
    assert late.json()["outcome"] == "unchanged"
    assert len(await customer_side.refunds_of(intent_id)) == 2
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 4, "reserved": 0}
    now = api.deps.clock.now()
    window = {"from": (now - timedelta(days=1)).isoformat(),
              "to": (now + timedelta(days=1)).isoformat()}
    report = (await api.gql(SALES, window, token=admin))["salesReport"]
    assert (report["refunds"]["amount"], report["ordersRefunded"]) == (total, 1)


async def test_refund_order_after_a_full_dashboard_refund_refunds_nothing_more(
        api: Api, admin: str, customer_side: Customer) -> None:
    """Refunds at the provider that already cover the capture are adopted: refundOrder
    (the charge.refunded not yet delivered) asks for no second refund."""
    _, customer, order = await pending(api, admin)
    intent_id, total = order["payment"]["intentId"], order["total"]["amount"]
    method = await customer_side.card(CARD_OK)
    await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer)
    await dashboard_refund(customer_side, intent_id, 300)
    await dashboard_refund(customer_side, intent_id, total - 300)  # not delivered yet

    refunded = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]

    assert refunded["order"]["status"] == "REFUNDED"
    assert len(await customer_side.refunds_of(intent_id)) == 2


class UnreachableForReads(StripeGateway):
    """The provider cannot be asked what an intent is now (a network blip)."""

    async def retrieve_intent(self, intent_id: str):  # type: ignore[override]
        raise PaymentFailed.provider_error()


async def test_a_webhook_whose_intent_cannot_be_read_again_is_503_and_changes_nothing(
        pg_url: str, stripe_emulator: LocalStripe, customer_side: Customer) -> None:
    """The event is only applied on what the provider says now: if it cannot be asked, the
    answer is 503 so that Stripe delivers the event again, and nothing is claimed."""
    gateway = UnreachableForReads("sk_test_x", api_base=stripe_emulator.api_base)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(gateway=gateway, run_sweeper=False)) as api:
        admin = await api.create_admin()
        _, customer, order = await pending(api, admin)
        intent_id = order["payment"]["intentId"]
        await customer_side.pay_directly(intent_id)
        event = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))

        response = await post_event(api, event)

        assert response.status_code == 503
        assert await status_of(api, order["id"], customer) == "PAYMENT_PENDING"
        assert scalar(pg_url, "SELECT count(*) FROM webhook_events") == 0
        await gateway.aclose()


@pytest.mark.parametrize("heard_by", ["syncPayment", "the sweeper", "a late succeeded webhook"])
async def test_a_payment_refunded_in_full_before_we_heard_of_it_ends_refunded_not_paid(
        api: Api, admin: str, customer_side: Customer, heard_by: str) -> None:
    """Paid through Stripe.js and refunded in full in the dashboard while both webhooks were
    lost: whoever reads the intent next finds its money back, so the order is PAID then
    REFUNDED on its record and its stock back on sale, never PAID without the money."""
    product, customer, order = await pending(api, admin, sku=f"quick-{len(heard_by)}")
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)
    await dashboard_refund(customer_side, intent_id)  # its charge.refunded is lost too

    if heard_by == "syncPayment":
        synced = (await api.gql(SYNC, {"id": order["id"]}, token=customer))["syncPayment"]
        assert synced["order"]["status"] == "REFUNDED", synced
    elif heard_by == "the sweeper":
        execute(api.settings.database_url, "UPDATE orders SET reserved_until = now() - "
                "interval '1 minute' WHERE id = %s", (int(order["id"]),))
        s = api.deps
        await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)
    else:
        late = intent_event("payment_intent.succeeded", await customer_side.intent(intent_id))
        assert (await post_event(api, late)).status_code == 200

    assert await status_of(api, order["id"], customer) == "REFUNDED"
    assert paid_transitions(api.settings.database_url, order["id"]) == 1
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 4, "reserved": 0}
    assert stock_invariant_violations(api.settings.database_url, {int(product): 4}) == []
