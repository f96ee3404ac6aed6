"""Each order's payment goes to the gateway its order names (`payment.provider`); new
checkouts go to the default one (issue 11 item 2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ordergraph.adapters.gateways import GatewayRegistry
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.adapters.stripe.gateway import StripeGateway
from ordergraph.domain.ports import PaymentIntent
from ordergraph.web.app import Overrides
from tests.support import (
    CARD_OK,
    PAY,
    REFUND,
    Api,
    Customer,
    execute,
    rows,
    running_api,
    settings_for,
)


class Recording(StripeGateway):
    """The real gateway (same emulator), under a provider name of the test's, noting the
    intents it was asked about."""

    def __init__(self, provider: str, api_base: str) -> None:
        super().__init__("sk_test_routing", api_base=api_base)
        self.provider = provider
        self.calls: list[tuple[str, str]] = []

    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent:
        self.calls.append(("confirm", intent_id))
        return await super().confirm_intent(intent_id, payment_method_id=payment_method_id,
                                            idempotency_key=idempotency_key)

    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        self.calls.append(("refund", intent_id))
        return await super().refund(intent_id, idempotency_key=idempotency_key)


@pytest.fixture
async def two_providers(pg_url: str, stripe_emulator: LocalStripe
                        ) -> AsyncIterator[tuple[Api, Recording, Recording]]:
    stripe = Recording("stripe", stripe_emulator.api_base)
    acme = Recording("acme", stripe_emulator.api_base)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(gateway=GatewayRegistry(stripe, acme),
                                               run_sweeper=False)) as api:
        yield api, stripe, acme


async def test_a_payment_goes_to_the_provider_its_order_names(
        two_providers: tuple[Api, Recording, Recording], customer_side: Customer) -> None:
    api, stripe, acme = two_providers
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="routed", price_cents=900, stock=5)
    customer = await api.register("routed@example.com")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    assert order["payment"]["provider"] == "stripe"  # the default, for a new checkout
    intent_id = order["payment"]["intentId"]
    # As if a second provider had opened it (it is the same emulator underneath).
    execute(api.settings.database_url,
            "UPDATE orders SET payment_provider = 'acme' WHERE id = %s", (int(order["id"]),))

    paid = (await api.gql(PAY, {"id": order["id"], "pm": await customer_side.card(CARD_OK)},
                          token=customer))["payOrder"]
    assert paid["__typename"] == "PayOrderPayload", paid
    assert paid["order"]["status"] == "PAID"
    refunded = (await api.gql(REFUND, {"id": order["id"]}, token=admin))["refundOrder"]
    assert refunded["order"]["status"] == "REFUNDED", refunded

    assert acme.calls == [("confirm", intent_id), ("refund", intent_id)]
    assert stripe.calls == []


async def test_a_payment_of_an_unknown_provider_is_refused_and_changes_nothing(
        two_providers: tuple[Api, Recording, Recording], customer_side: Customer) -> None:
    api, stripe, acme = two_providers
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="orphan", price_cents=900, stock=5)
    customer = await api.register("orphan@example.com")
    order = (await api.checkout(customer, [(product, 1)]))["order"]
    url = api.settings.database_url
    execute(url, "UPDATE orders SET payment_provider = 'gone' WHERE id = %s",
            (int(order["id"]),))

    answer = (await api.gql(PAY, {"id": order["id"], "pm": await customer_side.card(CARD_OK)},
                            token=customer))["payOrder"]

    assert answer["__typename"] == "PaymentError", answer
    assert answer["code"] == "PAYMENT_PROVIDER_ERROR"
    assert rows(url, "SELECT status FROM orders WHERE id = %s", (int(order["id"]),)) == \
        [("PAYMENT_PENDING",)]
    assert (stripe.calls, acme.calls) == ([], [])
