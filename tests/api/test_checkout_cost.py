"""What one checkout costs the database: its statements, counted in the app (issue 12).

Each statement is a round trip to PostgreSQL and most of a checkout's CPU (bench/RESULTS.md);
this holds the count where bench/ measured it, so a change that adds one shows up here.
"""

from __future__ import annotations

from tests.support import Api, statements_sent, stock_invariant_violations

# Transaction 1: the customer's row (the viewer, locked for the per-customer limits) with the
# order of the idempotency key, the customer's unpaid total (the limits), the products, the
# order with its lines, the stock locked and moved, the audit rows with the stock movements;
# transaction 2: the payment on the order and its audit row. No separate read of the viewer.
STATEMENTS_PER_CHECKOUT = 8


async def test_a_checkout_takes_the_same_few_statements_whatever_the_cart(
        api: Api, admin: str) -> None:
    products = [await api.create_product(admin, sku=f"part-{i}", stock=50) for i in range(3)]
    customer = await api.register("counted@example.com")
    await api.checkout(customer, [(products[0], 1)], key="warm-up")

    counts = []
    for size in (1, 3):
        with statements_sent() as statements:
            result = await api.checkout(customer, [(p, 2) for p in products[:size]],
                                        key=f"cart-of-{size}")
        assert result["order"]["status"] == "PAYMENT_PENDING", result
        counts.append(len(statements))

    assert counts == [STATEMENTS_PER_CHECKOUT, STATEMENTS_PER_CHECKOUT]
    stock = {int(p): 50 for p in products}
    assert stock_invariant_violations(api.settings.database_url, stock) == []
