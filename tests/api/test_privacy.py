"""What customers and the public may not learn (issue 10, item 9): who on the staff touched an
order, and anything about products taken off sale."""

from __future__ import annotations

import json

from tests.support import CANCEL, Api

HISTORY = """
query History($id: ID!) { order(id: $id) {
  history { action actorKind actorRole actor { id email name role } before after }
} }"""
DEACTIVATE = """
mutation Deactivate($id: ID!) {
  updateProduct(id: $id, input: {active: false}) { __typename }
}"""


async def test_customers_see_staff_in_their_order_history_as_a_role(api: Api) -> None:
    boss = await api.create_admin("boss@example.com")
    product = await api.create_product(boss, sku="history-lamp", stock=3)
    customer = await api.register("owner@example.com")
    order_id = (await api.checkout(customer, [(product, 1)]))["order"]["id"]
    cancelled = await api.gql(CANCEL, {"id": order_id}, token=boss)
    assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"

    seen_by_customer = await api.raw(HISTORY, {"id": order_id}, token=customer)
    assert "boss@example.com" not in json.dumps(seen_by_customer)
    history = seen_by_customer["data"]["order"]["history"]
    by_staff = [e for e in history if e["action"] == "ORDER_STATUS_CHANGED"
                and e["after"]["status"] == "CANCELLED"]
    assert [(e["actorKind"], e["actor"], e["actorRole"]) for e in by_staff] == \
        [("USER", None, "ADMIN")]
    created = next(e for e in history if e["action"] == "ORDER_CREATED")
    assert created["actor"]["email"] == "owner@example.com"  # themselves, by name
    assert created["actorRole"] == "CUSTOMER"

    seen_by_staff = (await api.gql(HISTORY, {"id": order_id}, token=boss))["order"]["history"]
    cancelled_by = next(e for e in seen_by_staff if e["action"] == "ORDER_STATUS_CHANGED"
                        and e["after"]["status"] == "CANCELLED")
    assert cancelled_by["actor"]["email"] == "boss@example.com"  # admins still see who
    assert cancelled_by["actorRole"] == "ADMIN"


async def test_products_off_sale_are_hidden_from_every_public_query(api: Api) -> None:
    boss = await api.create_admin()
    product = await api.create_product(boss, sku="withdrawn-chair", stock=4)
    await api.gql(DEACTIVATE, {"id": product}, token=boss)
    customer = await api.register("browser@example.com")
    queries = [
        ("query($id: ID!) { product(id: $id) { id stock { available } } }", {"id": product}),
        ('{ product(sku: "withdrawn-chair") { id stock { available } } }', {}),
        ('{ products(search: "withdrawn") { totalCount edges { node { id } } } }', {}),
        ("{ products(includeInactive: true) { totalCount edges { node { id } } } }", {}),
    ]
    for query, variables in queries:
        for token in (None, customer):
            body = await api.raw(query, variables, token=token)
            assert "errors" not in body, body
            assert body["data"] in ({"product": None},
                                    {"products": {"totalCount": 0, "edges": []}}), (query, body)
    admin_view = await api.gql("query($id: ID!) { product(id: $id) { stock { available } } }",
                               {"id": product}, token=boss)
    assert admin_view["product"]["stock"]["available"] == 4
