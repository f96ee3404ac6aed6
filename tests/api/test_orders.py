"""Orders through GraphQL: reading (owner or admin), cancelling, fulfilling, history."""

from __future__ import annotations

from tests.support import (
    CANCEL,
    FULFILL,
    ORDER,
    STOCK,
    Api,
    statements_sent,
    stock_invariant_violations,
)

ORDERS_PAGE = """
query Page($first: Int) {
  orders(first: $first) {
    totalCount
    edges { node {
      id number status total { formatted }
      customer { email }
      items { quantity unitPrice { formatted } product { sku name stock { available } } }
      history { action actorKind actor { email } }
    } }
  }
}"""


async def test_owner_cancels_and_stock_is_released_exactly_once(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="chair", stock=5)
    customer = await api.register("changed-mind@example.com")
    order = (await api.checkout(customer, [(product, 3)]))["order"]

    cancelled = (await api.gql(CANCEL, {"id": order["id"]}, token=customer))["cancelOrder"]
    again = (await api.gql(CANCEL, {"id": order["id"]}, token=customer))["cancelOrder"]

    assert cancelled["order"]["status"] == "CANCELLED"
    assert cancelled["order"]["version"] == order["version"] + 1
    assert cancelled["order"]["nextStatuses"] == []
    assert (again["__typename"], again["from"], again["to"]) == \
        ("InvalidTransitionError", "CANCELLED", "CANCELLED")
    stock = (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]
    assert stock == {"available": 5, "reserved": 0}
    assert stock_invariant_violations(api.settings.database_url, {int(product): 5}) == []
    intent = await api.deps.gateway.retrieve_intent(order["payment"]["intentId"])
    assert intent.status == "canceled"


async def test_customers_cannot_see_or_touch_each_others_orders(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="secret", stock=5)
    alice, mallory = await api.customers(2)
    order_id = (await api.checkout(alice, [(product, 1)]))["order"]["id"]

    assert (await api.gql(ORDER, {"id": order_id}, token=mallory))["order"] is None
    assert (await api.gql(ORDER, {"id": "not-a-number"}, token=alice))["order"] is None
    cancel = (await api.gql(CANCEL, {"id": order_id}, token=mallory))["cancelOrder"]
    assert cancel["code"] == "NOT_FOUND"
    mine = await api.gql("{ myOrders { totalCount } }", token=mallory)
    assert mine["myOrders"]["totalCount"] == 0
    assert (await api.gql(ORDER, {"id": order_id}, token=alice))["order"]["status"] == \
        "PAYMENT_PENDING"
    assert await api.error_code(FULFILL, {"id": order_id}, token=mallory) == "FORBIDDEN"


async def test_admin_cancels_any_order_but_cannot_fulfil_an_unpaid_one(
        api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="desk", stock=2)
    customer = await api.register("slow-payer@example.com")
    order_id = (await api.checkout(customer, [(product, 1)]))["order"]["id"]

    fulfil = (await api.gql(FULFILL, {"id": order_id}, token=admin))["fulfillOrder"]
    assert (fulfil["code"], fulfil["from"], fulfil["to"]) == \
        ("INVALID_TRANSITION", "PAYMENT_PENDING", "FULFILLED")
    cancelled = (await api.gql(CANCEL, {"id": order_id}, token=admin))["cancelOrder"]
    assert cancelled["order"]["status"] == "CANCELLED"


async def test_history_is_the_orders_audit_trail(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="bike", stock=2)
    customer = await api.register("rider@example.com")
    order_id = (await api.checkout(customer, [(product, 1)]))["order"]["id"]
    await api.gql(CANCEL, {"id": order_id}, token=customer)

    data = await api.gql("""query($id: ID!) { order(id: $id) { history {
        action actorKind actor { email } entityType entityId before after } } }""",
                         {"id": order_id}, token=customer)
    history = data["order"]["history"]
    assert [(h["action"], h["after"].get("status")) for h in history] == [
        ("ORDER_CREATED", "CREATED"), ("ORDER_STATUS_CHANGED", "PAYMENT_PENDING"),
        ("ORDER_STATUS_CHANGED", "CANCELLED")]
    assert {h["actor"]["email"] for h in history} == {"rider@example.com"}
    assert {(h["entityType"], h["entityId"]) for h in history} == {("ORDER", order_id)}
    assert history[-1]["before"]["status"] == "PAYMENT_PENDING"


async def test_audit_log_filters(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="audited", stock=2)
    customer = await api.register("watched@example.com")
    await api.checkout(customer, [(product, 1)])
    query = """query($type: String, $id: ID) { auditLog(entityType: $type, entityId: $id) {
        totalCount edges { node { action entityType entityId actorKind } } } }"""

    inventory = (await api.gql(query, {"type": "INVENTORY", "id": product},
                               token=admin))["auditLog"]
    assert [e["node"]["action"] for e in inventory["edges"]] == ["STOCK_RESERVED",
                                                                 "STOCK_INITIAL"]
    assert await api.error_code(query, {"type": "SPACESHIP"}, token=admin) == \
        "VALIDATION_FAILED"


async def test_a_page_of_orders_costs_a_constant_number_of_queries(api: Api,
                                                                   admin: str) -> None:
    products = [await api.create_product(admin, sku=f"p{i}", stock=100) for i in range(5)]
    customers = await api.customers(4)
    for n in range(20):
        await api.checkout(customers[n % 4], [(products[n % 5], 1), (products[(n + 1) % 5], 2)])

    with statements_sent() as statements:
        data = await api.gql(ORDERS_PAGE, {"first": 20}, token=admin)
    page_of_20 = len(statements)
    with statements_sent() as statements:
        await api.gql(ORDERS_PAGE, {"first": 2}, token=admin)
    page_of_2 = len(statements)

    assert len(data["orders"]["edges"]) == 20
    assert all(len(e["node"]["items"]) == 2 for e in data["orders"]["edges"])
    # viewer, orders, count, items, customers, products, stock, history, history actors
    assert page_of_20 == page_of_2 <= 10, statements
