"""Many customers at once: the database never oversells, no deadlock surfaces, counts exact.

Each scenario runs on PostgreSQL at READ COMMITTED (the default, row locks), at SERIALIZABLE
(retries), and on the embedded SQLite default (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe
from tests.support import (
    ADJUST_STOCK,
    STOCK,
    Api,
    running_api,
    scalar,
    settings_for,
    stock_invariant_violations,
)

BACKENDS = ["postgresql-read-committed", "postgresql-serializable", "sqlite"]


@pytest.fixture(params=BACKENDS)
async def shop(request: pytest.FixtureRequest,
               stripe_emulator: LocalStripe) -> AsyncIterator[Api]:
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        isolation = "READ COMMITTED"  # not used by SQLite
    else:
        url = request.getfixturevalue("pg_url")
        isolation = "SERIALIZABLE" if request.param.endswith("serializable") \
            else "READ COMMITTED"
    settings = settings_for(url, stripe_api_base=stripe_emulator.api_base,
                            database_isolation_level=isolation, database_pool_size=20)
    async with running_api(settings) as api:
        yield api


async def levels(api: Api, admin: str, product_id: str) -> tuple[int, int]:
    stock = (await api.gql(STOCK, {"id": product_id}, token=admin))["product"]["stock"]
    return stock["available"], stock["reserved"]


async def test_ten_customers_race_for_the_last_five_units(shop: Api) -> None:
    admin = await shop.create_admin()
    product = await shop.create_product(admin, sku="last-units", stock=5)
    customers = await shop.customers(10)

    results = await asyncio.gather(*[shop.checkout(c, [(product, 1)]) for c in customers])

    outcomes = Counter(r["__typename"] for r in results)
    assert outcomes == {"CheckoutPayload": 5, "InsufficientStockError": 5}, results
    assert await levels(shop, admin, product) == (0, 5)
    url = shop.settings.database_url
    assert scalar(url, "SELECT count(*) FROM orders") == 5
    assert stock_invariant_violations(url, {int(product): 5}) == []


async def test_opposite_line_orders_do_not_deadlock(shop: Api) -> None:
    admin = await shop.create_admin()
    left = await shop.create_product(admin, sku="left", stock=100)
    right = await shop.create_product(admin, sku="right", stock=100)
    customers = await shop.customers(20)

    carts = [[(left, 1), (right, 2)] if i % 2 else [(right, 2), (left, 1)] for i in range(20)]
    results = await asyncio.gather(*[shop.checkout(c, cart)
                                     for c, cart in zip(customers, carts, strict=True)])

    assert [r["__typename"] for r in results] == ["CheckoutPayload"] * 20, results
    assert await levels(shop, admin, left) == (80, 20)
    assert await levels(shop, admin, right) == (60, 40)
    assert stock_invariant_violations(shop.settings.database_url,
                                      {int(left): 100, int(right): 100}) == []


async def test_adjustments_and_checkouts_on_one_product_are_all_counted(shop: Api) -> None:
    admin = await shop.create_admin()
    product = await shop.create_product(admin, sku="busy", stock=50)
    customers = await shop.customers(10)

    async def adjust(delta: int) -> str:
        data = await shop.gql(ADJUST_STOCK, {"productId": product, "delta": delta,
                                             "reason": "recount"}, token=admin)
        return data["adjustStock"]["__typename"]

    jobs = [shop.checkout(c, [(product, 2)]) for c in customers]
    jobs += [adjust(+3) for _ in range(10)] + [adjust(-1) for _ in range(10)]
    results = await asyncio.gather(*jobs)

    assert [r["__typename"] for r in results[:10]] == ["CheckoutPayload"] * 10
    assert results[10:] == ["StockPayload"] * 20
    # 50 - 10 * 2 sold into reservations + 10 * 3 - 10 * 1 adjusted.
    assert await levels(shop, admin, product) == (50 - 20 + 30 - 10, 20)
    assert stock_invariant_violations(shop.settings.database_url) == []


async def test_concurrent_removals_never_go_below_zero(shop: Api) -> None:
    admin = await shop.create_admin()
    product = await shop.create_product(admin, sku="shrinking", stock=5)

    results = await asyncio.gather(*[
        shop.gql(ADJUST_STOCK, {"productId": product, "delta": -1}, token=admin)
        for _ in range(8)])

    outcomes = Counter(r["adjustStock"]["__typename"] for r in results)
    assert outcomes == {"StockPayload": 5, "ValidationError": 3}
    assert await levels(shop, admin, product) == (0, 0)
