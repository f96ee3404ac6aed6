"""Catalog through GraphQL: products, visibility, stock administration, pagination."""

from __future__ import annotations

from tests.support import (
    ADJUST_STOCK,
    CREATE_PRODUCT,
    SET_STOCK,
    Api,
    rows,
    stock_invariant_violations,
)

UPDATE_PRODUCT = """
mutation Update($id: ID!, $input: UpdateProductInput!) {
  updateProduct(id: $id, input: $input) {
    __typename
    ... on ProductPayload { product { id name description active price { amount formatted } } }
    ... on UserError { code message field }
  }
}"""

PRODUCTS = """
query Products($first: Int, $after: String, $search: String, $includeInactive: Boolean) {
  products(first: $first, after: $after, search: $search, includeInactive: $includeInactive) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id sku active stock { available reserved } } }
  }
}"""


async def create(api: Api, admin: str, **fields: object) -> dict:
    data = await api.gql(CREATE_PRODUCT, {"input": {"name": "Thing", "priceCents": 100,
                                                    **fields}}, token=admin)
    return data["createProduct"]


async def test_admin_creates_a_product_with_stock(api: Api, admin: str) -> None:
    result = await create(api, admin, sku="mechanical-keyboard", name="Mechanical Keyboard",
                          priceCents=14999, initialStock=50, description="Clicky.")
    product = result["product"]
    assert product["price"] == {"amount": 14999, "currency": "usd", "formatted": "$149.99"}
    assert product["stock"] == {"productId": product["id"], "available": 50, "reserved": 0}
    assert product["active"] is True
    audit = rows(api.settings.database_url,
                 "SELECT action, entity_type FROM audit_log ORDER BY id")
    assert audit[-2:] == [("PRODUCT_CREATED", "PRODUCT"), ("STOCK_INITIAL", "INVENTORY")]


async def test_product_input_is_validated(api: Api, admin: str) -> None:
    await create(api, admin, sku="taken")
    cases = [
        ({"sku": "Not Url Safe"}, "sku"),
        ({"sku": "taken"}, "sku"),
        ({"sku": "free", "priceCents": 0}, "priceCents"),
        ({"sku": "free", "priceCents": -5}, "priceCents"),
        ({"sku": "free", "initialStock": -1}, "initialStock"),
        ({"sku": "free", "name": "   "}, "name"),
    ]
    for fields, field in cases:
        result = await create(api, admin, **fields)
        assert (result["__typename"], result["field"]) == ("ValidationError", field), fields
    assert rows(api.settings.database_url, "SELECT count(*) FROM products") == [(1,)]


async def test_customers_see_the_price_but_not_reserved_units(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="visible", stock=7)
    customer = await api.register("viewer@example.com")
    await api.checkout(customer, [(product, 2)])
    public = await api.gql(PRODUCTS)
    node = public["products"]["edges"][0]["node"]
    assert node["stock"] == {"available": 5, "reserved": None}
    as_admin = await api.gql(PRODUCTS, token=admin)
    assert as_admin["products"]["edges"][0]["node"]["stock"] == {"available": 5, "reserved": 2}


async def test_deactivated_products_are_hidden_from_customers(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="retired", stock=3)
    await api.create_product(admin, sku="current", stock=3)
    updated = await api.gql(UPDATE_PRODUCT, {"id": product, "input": {"active": False}},
                            token=admin)
    assert updated["updateProduct"]["product"]["active"] is False
    customer = await api.register("shopper@example.com")

    listing = await api.gql(PRODUCTS, {"includeInactive": True}, token=customer)
    assert [e["node"]["sku"] for e in listing["products"]["edges"]] == ["current"]
    assert (await api.gql('query($id: ID!) { product(id: $id) { id } }', {"id": product},
                          token=customer))["product"] is None
    assert (await api.gql('{ product(sku: "retired") { id } }'))["product"] is None
    admin_view = await api.gql(PRODUCTS, {"includeInactive": True}, token=admin)
    assert [e["node"]["sku"] for e in admin_view["products"]["edges"]] == ["retired", "current"]
    refused = await api.checkout(customer, [(product, 1)])
    assert refused["code"] == "NOT_FOUND"


async def test_update_product_changes_only_what_is_given(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="lamp", price_cents=2500)
    result = await api.gql(UPDATE_PRODUCT, {"id": product, "input": {"priceCents": 1999}},
                           token=admin)
    assert result["updateProduct"]["product"]["name"] == "Lamp"
    assert result["updateProduct"]["product"]["price"]["formatted"] == "$19.99"
    missing = await api.gql(UPDATE_PRODUCT, {"id": "777", "input": {"name": "X"}}, token=admin)
    assert missing["updateProduct"]["code"] == "NOT_FOUND"
    bad = await api.gql(UPDATE_PRODUCT, {"id": product, "input": {"priceCents": 0}},
                        token=admin)
    assert bad["updateProduct"]["field"] == "priceCents"
    (before, after), = rows(api.settings.database_url,
                            "SELECT before, after FROM audit_log WHERE action = "
                            "'PRODUCT_UPDATED'")
    assert (before, after) == ({"price": 2500}, {"price": 1999})


async def test_set_and_adjust_stock(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="bolts", stock=10)

    set_result = await api.gql(SET_STOCK, {"productId": product, "available": 4}, token=admin)
    assert set_result["setStock"]["stock"]["available"] == 4
    added = await api.gql(ADJUST_STOCK, {"productId": product, "delta": 6, "reason": "delivery"},
                          token=admin)
    assert added["adjustStock"]["stock"]["available"] == 10
    too_many = await api.gql(ADJUST_STOCK, {"productId": product, "delta": -11}, token=admin)
    assert (too_many["adjustStock"]["code"], too_many["adjustStock"]["field"]) == \
        ("VALIDATION_FAILED", "delta")
    negative = await api.gql(SET_STOCK, {"productId": product, "available": -1}, token=admin)
    assert negative["setStock"]["code"] == "VALIDATION_FAILED"
    missing = await api.gql(SET_STOCK, {"productId": "999", "available": 1}, token=admin)
    assert missing["setStock"]["code"] == "NOT_FOUND"

    movements = rows(api.settings.database_url,
                     "SELECT reason, delta_available, note FROM stock_movements ORDER BY id")
    assert movements == [("INITIAL", 10, None), ("SET", -6, None), ("ADJUSTED", 6, "delivery")]
    assert stock_invariant_violations(api.settings.database_url) == []


async def test_pagination_walks_every_product_once(api: Api, admin: str) -> None:
    for i in range(7):
        await api.create_product(admin, sku=f"item-{i}")
    seen, after, pages = [], None, 0
    while True:
        page = (await api.gql(PRODUCTS, {"first": 3, "after": after}))["products"]
        assert page["totalCount"] == 7
        seen += [edge["node"]["sku"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"item-{i}" for i in range(7)]
    assert pages == 3


async def test_first_is_capped_at_100_and_cursors_are_checked(api: Api, admin: str) -> None:
    await api.create_product(admin, sku="one")
    assert len((await api.gql(PRODUCTS, {"first": 1000}))["products"]["edges"]) == 1
    assert await api.error_code(PRODUCTS, {"first": -1}) == "VALIDATION_FAILED"
    assert await api.error_code(PRODUCTS, {"after": "garbage!"}) == "VALIDATION_FAILED"


async def test_search_matches_name_and_sku_case_insensitively(api: Api, admin: str) -> None:
    await api.create_product(admin, sku="usb-c-hub", name="USB-C Hub")
    await api.create_product(admin, sku="webcam", name="HD Webcam")
    await api.create_product(admin, sku="percent", name="100% Cotton")
    found = await api.gql(PRODUCTS, {"search": "usb"})
    assert [e["node"]["sku"] for e in found["products"]["edges"]] == ["usb-c-hub"]
    assert (await api.gql(PRODUCTS, {"search": "WEBCAM"}))["products"]["totalCount"] == 1
    # LIKE wildcards are matched literally.
    assert (await api.gql(PRODUCTS, {"search": "%"}))["products"]["totalCount"] == 1


async def test_inventory_lists_low_stock_for_admins(api: Api, admin: str) -> None:
    await api.create_product(admin, sku="plenty", stock=50)
    await api.create_product(admin, sku="low", stock=2)
    await api.create_product(admin, sku="off", stock=1, active=False)
    data = await api.gql("{ inventory(lowStockBelow: 5) { totalCount edges { node { sku } } } }",
                         token=admin)
    assert [e["node"]["sku"] for e in data["inventory"]["edges"]] == ["low", "off"]
