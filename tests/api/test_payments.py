"""Payments end to end with the real Stripe SDK against the localstripe emulator."""

from __future__ import annotations

import asyncio

from tests.support import (
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    FULFILL,
    PAY,
    REFUND,
    STOCK,
    SYNC,
    Api,
    Customer,
    execute,
    rows,
    stock_invariant_violations,
)


async def pending_order(api: Api, admin: str, *, stock: int = 5, quantity: int = 2,
                        sku: str = "gadget") -> tuple[str, str, dict]:
    product = await api.create_product(admin, sku=sku, price_cents=2500, stock=stock)
    customer = await api.register(f"{sku}-buyer@example.com")
    result = await api.checkout(customer, [(product, quantity)])
    assert result["order"]["status"] == "PAYMENT_PENDING"
    return product, customer, result["order"]


async def levels(api: Api, admin: str, product: str) -> tuple[int, int]:
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    return stock["available"], stock["reserved"]


async def test_pay_order_with_a_good_card(api: Api, admin: str,
                                          customer_side: Customer) -> None:
    product, customer, order = await pending_order(api, admin)
    method = await customer_side.card(CARD_OK)

    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]

    assert paid["__typename"] == "PayOrderPayload", paid
    assert paid["requiresAction"] is False
    assert paid["order"]["status"] == "PAID"
    assert paid["order"]["payment"]["status"] == "succeeded"
    assert paid["order"]["reservedUntil"] is None
    assert await levels(api, admin, product) == (3, 0)  # the reserved units are sold
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []
    again = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert (again["code"], again["from"]) == ("INVALID_TRANSITION", "PAID")


async def test_a_declined_card_fails_the_order_and_gives_the_stock_back(
        api: Api, admin: str, customer_side: Customer) -> None:
    product, customer, order = await pending_order(api, admin)
    method = await customer_side.card(CARD_DECLINED)

    declined = (await api.gql(PAY, {"id": order["id"], "pm": method},
                              token=customer))["payOrder"]

    assert (declined["__typename"], declined["code"]) == ("PaymentError", "PAYMENT_DECLINED")
    assert declined["declineCode"]
    status = (await api.gql(SYNC, {"id": order["id"]}, token=customer))["syncPayment"]
    assert status["order"]["status"] == "FAILED"
    assert await levels(api, admin, product) == (5, 0)
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_three_d_secure_asks_the_customer_to_act(api: Api, admin: str,
                                                       customer_side: Customer) -> None:
    _, customer, order = await pending_order(api, admin)
    method = await customer_side.card(CARD_3DS)

    result = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]

    assert result["requiresAction"] is True
    assert result["clientSecret"] == order["payment"]["clientSecret"]
    assert result["order"]["status"] == "PAYMENT_PENDING"
    assert result["order"]["payment"]["status"] == "requires_action"


async def test_only_the_owner_pays_and_only_a_pending_order(api: Api, admin: str,
                                                            customer_side: Customer) -> None:
    _, customer, order = await pending_order(api, admin)
    stranger = await api.register("stranger@example.com")
    method = await customer_side.card(CARD_OK)
    for token in (stranger, admin):
        result = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=token))["payOrder"]
        assert result["code"] == "NOT_FOUND"
    await api.gql("mutation($id: ID!) { cancelOrder(id: $id) { __typename } }",
                  {"id": order["id"]}, token=customer)
    late = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert (late["code"], late["from"], late["to"]) == ("INVALID_TRANSITION", "CANCELLED", "PAID")


async def test_sync_payment_applies_a_missed_webhook(api: Api, admin: str,
                                                     customer_side: Customer) -> None:
    product, _customer, order = await pending_order(api, admin)
    # Paid with Stripe.js in the browser; the in-process app receives no webhook.
    assert await customer_side.pay_directly(order["payment"]["intentId"]) == "succeeded"

    synced = (await api.gql(SYNC, {"id": order["id"]}, token=admin))["syncPayment"]

    assert synced["order"]["status"] == "PAID"
    assert await levels(api, admin, product) == (3, 0)
    (actor,), = rows(api.settings.database_url,
                     "SELECT actor_kind FROM audit_log WHERE action = 'ORDER_STATUS_CHANGED' "
                     "AND after->>'status' = 'PAID'")
    assert actor == "PAYMENT_PROVIDER"


async def paid_order(api: Api, admin: str, customer_side: Customer, **kwargs: object
                     ) -> tuple[str, str, dict]:
    product, customer, order = await pending_order(api, admin, **kwargs)  # type: ignore[arg-type]
    method = await customer_side.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert paid["order"]["status"] == "PAID"
    return product, customer, paid["order"]


async def test_admin_refunds_a_paid_order_once(api: Api, admin: str,
                                               customer_side: Customer) -> None:
    product, customer, order = await paid_order(api, admin, customer_side)

    assert await api.error_code(REFUND, {"id": order["id"]}, token=customer) == "FORBIDDEN"
    refunded = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]
    again = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]

    assert refunded["order"]["status"] == "REFUNDED"
    assert (again["code"], again["from"], again["to"]) == \
        ("INVALID_TRANSITION", "REFUNDED", "REFUNDED")
    assert len(await customer_side.refunds_of(order["payment"]["intentId"])) == 1
    # Refunded before it shipped: the units go back on sale.
    assert await levels(api, admin, product) == (5, 0)
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_racing_refunds_refund_once(api: Api, admin: str,
                                          customer_side: Customer) -> None:
    _, _, order = await paid_order(api, admin, customer_side)

    results = await asyncio.gather(*[api.gql(REFUND, {"id": order["id"]}, token=admin)
                                     for _ in range(5)])

    assert {r["refundOrder"]["__typename"] for r in results} <= {"OrderPayload",
                                                                  "InvalidTransitionError"}
    assert len(await customer_side.refunds_of(order["payment"]["intentId"])) == 1
    final = await api.gql("query($id: ID!) { order(id: $id) { status } }", {"id": order["id"]},
                          token=admin)
    assert final["order"]["status"] == "REFUNDED"


async def test_fulfil_a_paid_order_and_then_no_refund(api: Api, admin: str,
                                                      customer_side: Customer) -> None:
    product, _, order = await paid_order(api, admin, customer_side)
    fulfilled = (await api.gql(FULFILL, {"id": order["id"]}, token=admin))["fulfillOrder"]
    assert fulfilled["order"]["status"] == "FULFILLED"
    assert fulfilled["order"]["nextStatuses"] == []
    refused = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]
    assert (refused["code"], refused["from"]) == ("INVALID_TRANSITION", "FULFILLED")
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_cancelling_an_order_paid_a_moment_ago_sends_the_money_back(
        api: Api, admin: str, customer_side: Customer) -> None:
    product, customer, order = await pending_order(api, admin)
    await customer_side.pay_directly(order["payment"]["intentId"])  # the app has not heard

    cancelled = (await api.gql("""mutation($id: ID!) { cancelOrder(id: $id) {
        ... on OrderPayload { order { status payment { refundStatus } } } } }""",
                               {"id": order["id"]}, token=customer))["cancelOrder"]

    assert cancelled["order"]["status"] == "CANCELLED"
    assert cancelled["order"]["payment"]["refundStatus"] == "SUCCEEDED"
    assert len(await customer_side.refunds_of(order["payment"]["intentId"])) == 1
    assert await levels(api, admin, product) == (5, 0)
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []


async def test_emulator_rejects_nothing_we_send(api: Api, admin: str,
                                                customer_side: Customer) -> None:
    """The intent the app opened carries what Stripe needs: amount, currency, order id, and
    the installation it belongs to."""
    _, _, order = await pending_order(api, admin, quantity=3)
    intent = await customer_side.intent(order["payment"]["intentId"])
    assert (intent["amount"], intent["currency"]) == (7500, "usd")
    assert intent["metadata"] == {"order_id": order["id"],
                                  "installation": api.deps.installation_id}


async def test_a_refund_of_a_payment_the_provider_no_longer_knows_is_refused_and_closed(
        api: Api, admin: str, customer_side: Customer) -> None:
    """The provider does not know the order's intent any more (deleted, another account's
    keys): the refund is refused as a decline and its request closed, so fulfilment is not
    blocked by a refund that can never happen."""
    _product, _customer, order = await paid_order(api, admin, customer_side, sku="forgotten")
    url = api.settings.database_url
    execute(url, "UPDATE orders SET payment_intent_id = 'pi_unknown_to_the_provider' "
                 "WHERE id = %s", (int(order["id"]),))

    refused = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]

    assert refused["code"] == "PAYMENT_DECLINED", refused
    assert rows(url, "SELECT status, refund_status FROM orders WHERE id = %s",
                (int(order["id"]),)) == [("PAID", None)]
    fulfilled = (await api.gql(FULFILL, {"id": order["id"]}, token=admin))["fulfillOrder"]
    assert fulfilled["order"]["status"] == "FULFILLED", fulfilled
