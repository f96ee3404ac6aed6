"""Test helpers: a GraphQL client over the real ASGI app, and common documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from ordergraph.domain.model import SYSTEM, Role
from ordergraph.domain.services.auth import create_user
from ordergraph.settings import Settings
from ordergraph.web.app import Overrides, create_app

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
TEST_WEBHOOK_SECRET = "whsec_test_ordergraph"
TABLES = ("outbox", "password_resets", "owed_refunds", "installation", "webhook_events",
          "stock_movements", "audit_log", "order_items", "orders", "inventory", "products",
          "default_addresses", "users")


class GraphQLFailure(AssertionError):
    pass


@dataclass
class Api:
    """GraphQL over HTTP against the real app (in process, real database)."""

    app: Starlette
    client: httpx.AsyncClient
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def deps(self) -> Any:
        return self.app.state.deps

    async def post(self, query: str, variables: dict[str, Any] | None = None, *,
                   token: str | None = None, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        all_headers = {"content-type": "application/json", **(headers or {})}
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        return await self.client.post(
            "/graphql", content=json.dumps({"query": query, "variables": variables or {}}),
            headers=all_headers)

    async def raw(self, query: str, variables: dict[str, Any] | None = None, *,
                  token: str | None = None) -> dict[str, Any]:
        """The whole response body (data and errors)."""
        response = await self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        return response.json()

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *,
                  token: str | None = None) -> dict[str, Any]:
        """The data of a response that must have no errors."""
        body = await self.raw(query, variables, token=token)
        if body.get("errors"):
            raise GraphQLFailure(json.dumps(body["errors"], indent=2))
        return body["data"]

    async def error_code(self, query: str, variables: dict[str, Any] | None = None, *,
                         token: str | None = None) -> str:
        """The extensions.code of a response that must fail with a top-level error."""
        body = await self.raw(query, variables, token=token)
        assert body.get("errors"), body
        return body["errors"][0]["extensions"]["code"]

    # ---- accounts ----

    async def register(self, email: str, password: str = "password123",
                       name: str | None = None) -> str:
        data = await self.gql(REGISTER, {"input": {"email": email, "password": password,
                                                   "name": name}})
        assert data["register"]["__typename"] == "AuthPayload", data
        return data["register"]["token"]

    async def login(self, email: str, password: str) -> str:
        data = await self.gql(LOGIN, {"email": email, "password": password})
        assert data["login"]["__typename"] == "AuthPayload", data
        return data["login"]["token"]

    async def create_admin(self, email: str = "boss@example.com",
                           password: str = "admin-password") -> str:
        s = self.deps
        await create_user(uow=s.uow(), passwords=s.passwords, clock=s.clock, email=email,
                          password=password, name="Boss", role=Role.ADMIN, actor=SYSTEM)
        return await self.login(email, password)

    async def customers(self, count: int, prefix: str = "buyer") -> list[str]:
        return [await self.register(f"{prefix}{i}@example.com") for i in range(count)]

    # ---- catalog ----

    async def create_product(self, admin: str, *, sku: str, price_cents: int = 1000,
                             stock: int = 10, name: str | None = None,
                             active: bool = True) -> str:
        data = await self.gql(CREATE_PRODUCT, {"input": {
            "sku": sku, "name": name or sku.replace("-", " ").title(),
            "priceCents": price_cents, "initialStock": stock, "active": active}}, token=admin)
        result = data["createProduct"]
        assert result["__typename"] == "ProductPayload", result
        return result["product"]["id"]

    async def checkout(self, token: str, items: list[tuple[str, int]],
                       key: str | None = None,
                       address: dict[str, Any] | None = None) -> dict[str, Any]:
        data = await self.gql(CHECKOUT, {"input": {
            "items": [{"productId": pid, "quantity": qty} for pid, qty in items],
            "idempotencyKey": key, "shippingAddress": address}}, token=token)
        return data["checkout"]


@asynccontextmanager
async def running_api(settings: Settings, overrides: Overrides | None = None
                      ) -> AsyncIterator[Api]:
    # The background sweeper stays off unless a test asks for it.
    app = create_app(settings, overrides or Overrides(run_sweeper=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app=app, client=client, settings=settings)


@asynccontextmanager
async def live_server(settings: Settings, overrides: Overrides | None = None
                      ) -> AsyncIterator[tuple[str, Starlette]]:
    """The app served by uvicorn on a free loopback port, in this event loop."""
    import asyncio

    import uvicorn

    from ordergraph.adapters.stripe.emulator import free_port

    port = free_port()
    app = create_app(settings, overrides or Overrides(run_sweeper=False))
    # A bounded graceful shutdown: a test that fails with sockets still open must not hang
    # its teardown (and leave the app's hub tasks running into the next test).
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=10))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(400):
            if server.started or task.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, "uvicorn did not start"
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """The statements this process sends to PostgreSQL meanwhile, each executemany as one:
    through SQLAlchemy and straight on psycopg alike (db/driver.py), which SQLAlchemy's own
    cursor events would not see."""
    sent: list[str] = []
    execute, executemany = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany

    async def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *args, **kwargs)

    async def counted_executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await executemany(self, query, *args, **kwargs)

    psycopg.AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.AsyncCursor.executemany = counted_executemany  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign]
        psycopg.AsyncCursor.executemany = executemany  # type: ignore[method-assign]


def settings_for(database_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": TEST_JWT_SECRET,
        "stripe_webhook_secret": TEST_WEBHOOK_SECRET,
        "environment": "test",
    }
    values.update(changes)
    return Settings(**values)


def psycopg_dsn(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def truncate_all(url: str) -> None:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url.replace("+aiosqlite", ""))
        with engine.begin() as conn:
            for table in TABLES:
                conn.execute(sa.text(f"DELETE FROM {table}"))
            conn.execute(sa.text("DELETE FROM sqlite_sequence"))
        engine.dispose()
        return
    with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")


def scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """One value straight from the database (what the API cannot show)."""
    return rows(url, sql, params)[0][0]


def execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run a statement straight on the database (setting up what the API cannot)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url.replace("+aiosqlite", ""))
        with engine.begin() as conn:
            conn.exec_driver_sql(sql.replace("%s", "?"), params)
        engine.dispose()
        return
    with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
        conn.execute(sql, params)  # type: ignore[arg-type]


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url.replace("+aiosqlite", ""))
        with engine.connect() as conn:
            result = [tuple(r) for r in conn.exec_driver_sql(sql.replace("%s", "?"), params)]
        engine.dispose()
        return result
    with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]


def stock_invariant_violations(url: str, initial: dict[int, int] | None = None) -> list[str]:
    """Each product's ledger must sum to its levels; sold units must match paid orders.

    With `initial` (product id -> units it started with), also checks that
    initial = available + reserved + sold.
    """
    problems = []
    levels = rows(url, "SELECT product_id, available, reserved FROM inventory")
    for product_id, available, reserved in levels:
        ledger = rows(url, "SELECT COALESCE(SUM(delta_available), 0), "
                           "COALESCE(SUM(delta_reserved), 0) FROM stock_movements "
                           "WHERE product_id = %s", (product_id,))[0]
        if (int(ledger[0]), int(ledger[1])) != (available, reserved):
            problems.append(f"product {product_id}: ledger {ledger} != levels "
                            f"({available}, {reserved})")
        held = scalar(url, "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i "
                           "JOIN orders o ON o.id = i.order_id WHERE i.product_id = %s AND "
                           "o.status IN ('CREATED', 'PAYMENT_PENDING')", (product_id,))
        if int(held) != reserved:
            problems.append(f"product {product_id}: reserved {reserved} != held by open "
                            f"orders {held}")
        # Units are conserved: what the shop brought in (initial, set, adjusted) is on sale,
        # held, or sold. Reservations, releases and sales only move units around, and a
        # refund restocks what its order had sold.
        brought_in = scalar(url, "SELECT COALESCE(SUM(delta_available + delta_reserved), 0) "
                                 "FROM stock_movements WHERE product_id = %s AND reason IN "
                                 "('INITIAL', 'SET', 'ADJUSTED')", (product_id,))
        sold_units = scalar(url, "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i "
                                 "JOIN orders o ON o.id = i.order_id WHERE i.product_id = %s "
                                 "AND o.status IN ('PAID', 'FULFILLED')", (product_id,))
        if available + reserved + int(sold_units) != int(brought_in):
            problems.append(f"product {product_id}: {available} + {reserved} + {sold_units} "
                            f"!= {brought_in} brought in")
        if initial is not None and product_id in initial:
            sold = scalar(url, "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i "
                               "JOIN orders o ON o.id = i.order_id WHERE i.product_id = %s "
                               "AND o.status IN ('PAID', 'FULFILLED')", (product_id,))
            if available + reserved + int(sold) != initial[product_id]:
                problems.append(f"product {product_id}: {available} + {reserved} + {sold} "
                                f"!= initial {initial[product_id]}")
    return problems


# ---- documents ----------------------------------------------------------------------------

USER_ERROR = "... on UserError { code message field }"

REGISTER = f"""
mutation Register($input: RegisterInput!) {{
  register(input: $input) {{
    __typename
    ... on AuthPayload {{ token expiresAt user {{ id email name role }} }}
    {USER_ERROR}
    ... on RateLimitedError {{ retryAfterSeconds }}
  }}
}}"""

LOGIN = f"""
mutation Login($email: String!, $password: String!) {{
  login(email: $email, password: $password) {{
    __typename
    ... on AuthPayload {{ token expiresAt user {{ id email role }} }}
    {USER_ERROR}
    ... on RateLimitedError {{ retryAfterSeconds }}
  }}
}}"""

PRODUCT_FIELDS = "id sku name description active price { amount currency formatted } " \
                 "stock { productId available reserved }"

CREATE_PRODUCT = f"""
mutation Create($input: CreateProductInput!) {{
  createProduct(input: $input) {{
    __typename
    ... on ProductPayload {{ product {{ {PRODUCT_FIELDS} }} }}
    {USER_ERROR}
  }}
}}"""

ORDER_FIELDS = """
  id number status version reservedUntil nextStatuses
  total { amount currency formatted }
  subtotal { amount } shipping { amount }
  shippingAddress { name line1 line2 city postalCode region country }
  items { quantity unitPrice { amount } total { amount } product { id sku } }
  payment { provider intentId status clientSecret lastError }
  customer { id email }
"""

CHECKOUT = f"""
mutation Checkout($input: CheckoutInput!) {{
  checkout(input: $input) {{
    __typename
    ... on CheckoutPayload {{ clientSecret order {{ {ORDER_FIELDS} }} }}
    {USER_ERROR}
    ... on InsufficientStockError {{ productId requested available }}
    ... on PaymentError {{ declineCode }}
  }}
}}"""

ORDER_RESULT = f"""
  __typename
  ... on OrderPayload {{ order {{ {ORDER_FIELDS} }} }}
  {USER_ERROR}
  ... on InvalidTransitionError {{ from to }}
  ... on PaymentError {{ declineCode }}
"""

CANCEL = f"mutation Cancel($id: ID!) {{ cancelOrder(id: $id) {{ {ORDER_RESULT} }} }}"
FULFILL = f"mutation Fulfill($id: ID!) {{ fulfillOrder(id: $id) {{ {ORDER_RESULT} }} }}"
ORDER = f"query Order($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"

STOCK = "query Stock($id: ID!) { product(id: $id) { stock { available reserved } } }"

SET_STOCK = f"""
mutation SetStock($productId: ID!, $available: Int!) {{
  setStock(productId: $productId, available: $available) {{
    __typename
    ... on StockPayload {{ stock {{ productId available reserved }} }}
    {USER_ERROR}
  }}
}}"""

ADJUST_STOCK = f"""
mutation Adjust($productId: ID!, $delta: Int!, $reason: String) {{
  adjustStock(productId: $productId, delta: $delta, reason: $reason) {{
    __typename
    ... on StockPayload {{ stock {{ productId available reserved }} }}
    {USER_ERROR}
  }}
}}"""


# ---- payments -----------------------------------------------------------------------------

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"
CARD_3DS = "4000002500003155"

PAY = f"""
mutation Pay($id: ID!, $pm: String!) {{
  payOrder(id: $id, paymentMethodId: $pm) {{
    __typename
    ... on PayOrderPayload {{ requiresAction clientSecret order {{ {ORDER_FIELDS} }} }}
    {USER_ERROR}
    ... on InvalidTransitionError {{ from to }}
    ... on PaymentError {{ declineCode }}
  }}
}}"""
SYNC = f"mutation Sync($id: ID!) {{ syncPayment(id: $id) {{ {ORDER_RESULT} }} }}"
REFUND = f"mutation Refund($id: ID!) {{ refundOrder(id: $id) {{ {ORDER_RESULT} }} }}"


class Customer:
    """Plays the customer's browser against the Stripe emulator (what Stripe.js does)."""

    def __init__(self, api_base: str) -> None:
        import stripe

        self._http = stripe.HTTPXClient(timeout=10)
        self.client = stripe.StripeClient("sk_test_customer_side",
                                          base_addresses={"api": api_base},
                                          http_client=self._http)

    async def card(self, number: str) -> str:
        method = await self.client.v1.payment_methods.create_async(params={
            "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034,
                                     "cvc": "123"}})
        return str(method.id)

    async def pay_directly(self, intent_id: str, number: str = CARD_OK) -> str:
        """Confirm at the provider without telling the app (Stripe.js, another tab)."""
        method = await self.card(number)
        await self.client.v1.payment_intents.update_async(
            intent_id, params={"payment_method": method})
        intent = await self.client.v1.payment_intents.confirm_async(intent_id)
        return str(intent.status)

    async def intent(self, intent_id: str) -> dict[str, Any]:
        return (await self.client.v1.payment_intents.retrieve_async(intent_id)).to_dict()

    async def refunds_of(self, intent_id: str) -> list[dict[str, Any]]:
        listing = await self.client.v1.refunds.list_async()
        return [r for r in listing.to_dict()["data"] if r.get("payment_intent") == intent_id]

    async def aclose(self) -> None:
        await self._http.close_async()


def signed_webhook(event: dict[str, Any], secret: str = TEST_WEBHOOK_SECRET,
                   timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A webhook body and headers as Stripe would sign them."""
    import time

    import stripe

    payload = json.dumps(event)
    stamp = int(time.time()) if timestamp is None else timestamp
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=stamp)
    return payload.encode(), {"stripe-signature": header, "content-type": "application/json"}


def intent_event(event_type: str, intent: dict[str, Any], event_id: str | None = None
                 ) -> dict[str, Any]:
    import uuid

    return {"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "object": "event",
            "type": event_type, "created": 1_700_000_000, "livemode": False,
            "data": {"object": intent}}
