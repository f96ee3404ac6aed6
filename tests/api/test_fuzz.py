"""Generated operations and documents against the app: never a 5xx, never a broken invariant.

Hypothesis draws sequences of shop operations (checkouts with odd carts and quantities,
stock changes, cancellations, payments, fulfilment, refunds) and raw GraphQL text. After each
sequence: no response was a 5xx or an INTERNAL_SERVER_ERROR, and every product's stock adds
up (ledger = levels, reserved = held by open orders, units conserved).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.web.app import Overrides
from tests.support import (
    ADJUST_STOCK,
    CANCEL,
    CARD_DECLINED,
    CARD_OK,
    CHECKOUT,
    FULFILL,
    PAY,
    REFUND,
    SET_STOCK,
    Api,
    Customer,
    running_api,
    settings_for,
    stock_invariant_violations,
    truncate_all,
)

good_line = st.tuples(st.integers(0, 2), st.integers(1, 5))
odd_line = st.tuples(st.one_of(st.integers(0, 2), st.sampled_from(["999999", "x", "-1", ""])),
                     st.one_of(st.integers(-3, 0), st.sampled_from([1000, 1001, 2**31 - 1])))
# Mostly sensible carts, sometimes odd ones: both must keep the books straight.
cart = st.lists(st.one_of(good_line, good_line, good_line, odd_line), min_size=1, max_size=4)
checkout = st.tuples(st.just("checkout"), st.integers(0, 2), cart,
                     st.sampled_from([None, None, "k1", "k2"]))
operations = st.lists(st.one_of(
    checkout, checkout, checkout,
    st.tuples(st.just("adjust"), st.integers(0, 2), st.integers(-40, 40)),
    st.tuples(st.just("set"), st.integers(0, 2), st.integers(-5, 60)),
    st.tuples(st.just("cancel"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("pay"), st.integers(0, 5), st.sampled_from([CARD_OK, CARD_OK,
                                                                    CARD_DECLINED])),
    st.tuples(st.just("pay"), st.integers(0, 5), st.sampled_from([CARD_OK])),
    st.tuples(st.just("fulfil"), st.integers(0, 5)),
    st.tuples(st.just("refund"), st.integers(0, 5)),
), min_size=3, max_size=14)


class Shop:
    def __init__(self, api: Api, customer_side: Customer) -> None:
        self.api, self.side = api, customer_side
        self.failures: list[str] = []
        self.orders: list[tuple[str, str]] = []  # (order id, owner token)

    async def setup(self) -> None:
        self.admin = await self.api.create_admin()
        self.products = [await self.api.create_product(self.admin, sku=f"fuzz-{i}", stock=20)
                         for i in range(3)]
        self.customers = await self.api.customers(3, prefix="fuzzer")
        for i in range(3):  # orders for the generated operations to act on
            await self.run(("checkout", i, [(i, 2)], None))

    async def call(self, query: str, variables: dict[str, Any], token: str | None) -> dict:
        response = await self.api.post(query, variables, token=token)
        try:
            body = response.json() if response.status_code < 500 else {}
        except ValueError:
            body = {}  # a plain-text 400 ("no query") is a fine answer to garbage
        codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
        if response.status_code >= 500 or "INTERNAL_SERVER_ERROR" in codes:
            self.failures.append(f"{response.status_code} {query[:60]} {variables} {body}")
        return body.get("data") or {}

    def product(self, ref: int | str) -> str:
        return self.products[ref] if isinstance(ref, int) else ref

    def order(self, index: int) -> tuple[str, str] | None:
        return self.orders[index % len(self.orders)] if self.orders else None

    async def run(self, operation: tuple[Any, ...]) -> None:
        kind = operation[0]
        if kind == "checkout":
            _, who, lines, key = operation
            token = self.customers[who]
            data = await self.call(CHECKOUT, {"input": {
                "items": [{"productId": self.product(p), "quantity": q} for p, q in lines],
                "idempotencyKey": key}}, token)
            result = data.get("checkout") or {}
            if result.get("__typename") == "CheckoutPayload":
                self.orders.append((result["order"]["id"], token))
        elif kind in ("adjust", "set"):
            _, ref, amount = operation
            query, field = (ADJUST_STOCK, "delta") if kind == "adjust" else (SET_STOCK,
                                                                               "available")
            await self.call(query, {"productId": self.products[ref], field: amount},
                            self.admin)
        elif (found := self.order(operation[1])) is not None:
            order_id, owner = found
            if kind == "cancel":
                await self.call(CANCEL, {"id": order_id}, owner if operation[2] else self.admin)
            elif kind == "pay":
                method = await self.side.card(operation[2])
                await self.call(PAY, {"id": order_id, "pm": method}, owner)
            elif kind == "fulfil":
                await self.call(FULFILL, {"id": order_id}, self.admin)
            elif kind == "refund":
                await self.call(REFUND, {"id": order_id}, self.admin)


def run_scenario(pg_url: str, emulator: LocalStripe, steps: list[tuple[Any, ...]],
                 documents: list[str]) -> None:
    async def scenario() -> list[str]:
        truncate_all(pg_url)
        side = Customer(emulator.api_base)
        settings_ = settings_for(pg_url, stripe_api_base=emulator.api_base)
        try:
            async with running_api(settings_, Overrides(run_sweeper=False)) as api:
                shop = Shop(api, side)
                await shop.setup()
                for step in steps:
                    await shop.run(step)
                for document in documents:
                    await shop.call(document, {}, shop.admin)
                return shop.failures + stock_invariant_violations(pg_url)
        finally:
            await side.aclose()

    problems = asyncio.run(scenario())
    assert problems == []


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=operations)
def test_generated_operations_keep_the_books_straight(pg_database: str,
                                                       stripe_emulator: LocalStripe,
                                                       steps: list[tuple[Any, ...]]) -> None:
    run_scenario(pg_database, stripe_emulator, steps, [])


GRAPHQL_PIECES = [*"{}()[]:$!@.,\"' \n", "query", "mutation", "products", "order", "first",
                  "id", "__typename", "...", "on", "fragment", "checkout", "1", "-1", "true"]
graphql_ish = st.lists(st.sampled_from(GRAPHQL_PIECES), max_size=60).map("".join)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(documents=st.lists(st.one_of(graphql_ish, st.text(max_size=60)), min_size=5,
                          max_size=15))
def test_generated_documents_never_break_the_server(pg_database: str,
                                                     stripe_emulator: LocalStripe,
                                                     documents: list[str]) -> None:
    run_scenario(pg_database, stripe_emulator, [], documents)
