"""Issue 10: a model-based chaos suite. Money and stock hold under every interleaving.

A Hypothesis RuleBasedStateMachine whose rules are the public GraphQL operations, sent over
HTTP to the real app (uvicorn on loopback, ``live_server``) on PostgreSQL, with the real
Stripe SDK talking to localstripe through a fault-injecting proxy (faults.py), webhooks held
and delivered by the machine (webhooks.py), and the invariant (invariant.py) checked after
every step and, strictly, after a final settle at the end of every example.

Run:
    pytest tests/chaos/test_model.py                       # CI: a few short examples
    make chaos                                             # soak: >= 2,000 steps, random seed
    CHAOS_SEED=1234 make chaos                             # replay a soak's seed

Environment: CHAOS_EXAMPLES (examples: 15 in CI, 50 in the soak), CHAOS_STEPS (steps per
example at most: 40 / 60), CHAOS_SEED (10 in CI, random in the soak, CHAOS_SOAK=1),
CHAOS_SHRINK_SECONDS (how long Hypothesis may shrink a failure: 60 / 300), CHAOS_TIMEOUT
(the test's timeout, s). See README.md here.

A failure prints the seed, the shrunk program (``state.pay(order=orders_0, card='ok',
fault=Fault('drop', 'confirm', 1))``...) and, under it, what each step did and answered.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, note, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from ordergraph.domain.model import Role
from ordergraph.domain.services.auth import create_user
from tests.chaos.faults import MODES, TARGETS, Fault
from tests.chaos.invariant import Claim, ProviderView, provider_view, violations
from tests.chaos.webhooks import intent_of
from tests.chaos.world import ADDRESSES, RESERVATION_TTL, SHIPPING, World
from tests.support import (
    ADJUST_STOCK,
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    SET_STOCK,
)

SOAK = os.environ.get("CHAOS_SOAK") == "1"
EXAMPLES = int(os.environ.get("CHAOS_EXAMPLES", "50" if SOAK else "15"))
STEPS = int(os.environ.get("CHAOS_STEPS", "60" if SOAK else "40"))
SEED = int(os.environ["CHAOS_SEED"]) if os.environ.get("CHAOS_SEED") else \
    (random.randrange(1, 2**31) if SOAK else 10)
SHRINK_SECONDS = int(os.environ.get("CHAOS_SHRINK_SECONDS", "300" if SOAK else "60"))
TIMEOUT = int(os.environ.get("CHAOS_TIMEOUT", "7200" if SOAK else "600"))

CARDS = {"ok": CARD_OK, "declined": CARD_DECLINED, "3ds": CARD_3DS}
PASSWORD = "chaos-password-1"
USERS = {"boss": Role.ADMIN, "staff": Role.ADMIN, "alice": Role.CUSTOMER,
         "bob": Role.CUSTOMER}
PRICES = (1000, 2500)

RESULT = "__typename ... on UserError { code message }"
PAYMENT_RESULT = f"{RESULT} ... on PaymentError {{ declineCode }}"
ORDER_RESULT = f"""{PAYMENT_RESULT}
  ... on OrderPayload {{ order {{ id status }} }}"""
CHECKOUT = f"""mutation($input: CheckoutInput!) {{ checkout(input: $input) {{ {PAYMENT_RESULT}
  ... on CheckoutPayload {{ order {{ id status payment {{ intentId }} }} }} }} }}"""
PAY = f"""mutation($id: ID!, $pm: String!) {{ payOrder(id: $id, paymentMethodId: $pm) {{
  {PAYMENT_RESULT} ... on PayOrderPayload {{ requiresAction order {{ id status }} }} }} }}"""
SYNC = f"mutation($id: ID!) {{ syncPayment(id: $id) {{ {ORDER_RESULT} }} }}"
CANCEL = f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ {ORDER_RESULT} }} }}"
FULFIL = f"mutation($id: ID!) {{ fulfillOrder(id: $id) {{ {ORDER_RESULT} }} }}"
REFUND = f"mutation($id: ID!) {{ refundOrder(id: $id) {{ {ORDER_RESULT} }} }}"
SET_ROLE = f"""mutation($id: ID!, $role: Role!) {{ setUserRole(userId: $id, role: $role) {{
  {RESULT} ... on UserPayload {{ user {{ id role }} }} }} }}"""
SET_ACTIVE = f"""mutation($id: ID!, $active: Boolean!) {{
  updateProduct(id: $id, input: {{active: $active}}) {{
  {RESULT} ... on ProductPayload {{ product {{ id active }} }} }} }}"""
CREATE_PRODUCT = f"""mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{
  {RESULT} ... on ProductPayload {{ product {{ id }} }} }} }}"""
LOGIN = """mutation($email: String!, $password: String!) { login(email: $email,
  password: $password) { __typename ... on AuthPayload { token user { id } } } }"""

# A fault during one operation: mostly none, otherwise any mode on any kind of call, as a
# blip (1 request: the SDK's retry heals it) or an outage (3: every attempt of a call fails).
FAULTS = st.one_of(
    st.just(Fault.none()),
    st.builds(Fault, st.sampled_from(MODES), st.sampled_from(TARGETS), st.sampled_from([1, 3])),
)
# Operations fired together with asyncio.gather on one order ("a, then b+c": a first).
RACES = ("refund+fulfil", "pay+cancel", "pay+pay", "pay+sync", "cancel+webhook",
         "expire+webhook", "expire+pay", "refund+refund", "cancel+admin-cancel",
         "pay+cancel+sync", "refund+webhook", "fulfil+webhook", "browser-pay+cancel",
         "3ds+pay", "refund+fulfil+webhook", "browser-pay, then expire+webhook",
         "browser-pay, then cancel+webhook", "pay, then refund+fulfil",
         "3ds, then pay+webhook", "browser-pay, then webhook+webhook+sync",
         "refund, then webhook+webhook+fulfil")


class Unexpected(AssertionError):
    """The API answered something no client should ever see."""


@dataclass(frozen=True)
class OrderRef:
    """An order the machine made; id 0 when the checkout made none. Every checkout adds one
    to the bundle either way, so the bundle's size never depends on what the app answered
    (Hypothesis needs the same choices to draw from the same bundles)."""

    id: int
    owner: str

    def __repr__(self) -> str:
        return f"order{self.id}" if self.id else "no-order"


WORLD: World | None = None
STATS: Counter[str] = Counter()  # what the examples reached, printed at the end


class ChaosMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        assert WORLD is not None
        self.world = WORLD
        self.api = WORLD.api
        self.settled = False  # every step so far ran and held: teardown may settle
        self.claims: list[Claim] = []
        self.brought_in: dict[int, int] = {}
        self.products: list[int] = []
        self.tokens: dict[str, str] = {}
        self.user_ids: dict[str, int] = {}
        self.staff_is_admin = True
        # What each idempotency key was first used for: the cart and where it ships.
        self.keys: dict[tuple[str, str], tuple[dict[int, int], str | None]] = {}
        self.intents: dict[int, str | None] = {}
        self.foreign_intents: set[str] = set()
        self.races = 0
        self.notes: list[str] = []
        WORLD.reset()

    # ---- plumbing -----------------------------------------------------------------------

    def run(self, coro: Awaitable[Any]) -> Any:
        self.settled = False
        try:
            return self.world.run(coro)  # type: ignore[arg-type]
        finally:
            self.flush_notes()

    def say(self, text: str) -> None:
        """Noted for the report of a failing example (from the world's thread too)."""
        self.notes.append(text)
        if " -> " in text:
            answer = " ".join(w for w in text.split(" -> ")[1].split()[:2]
                              if not w.isdigit() and "{" not in w)
            STATS[f"{text.split()[0]} -> {answer}"] += 1

    def flush_notes(self) -> None:
        lines, self.notes = self.notes, []
        for line in lines:
            if currently_in_test_context():
                note(line)
            else:
                print(line)

    async def gql(self, query: str, variables: dict[str, Any], who: str) -> dict[str, Any]:
        """One operation's payload (its result union member), or {"error": code}."""
        body = await self.api.raw(query, variables, token=self.tokens[who])
        if body.get("errors"):
            codes = [(e.get("extensions") or {}).get("code") for e in body["errors"]]
            if not set(codes) <= {"FORBIDDEN", "UNAUTHENTICATED"}:
                operation = query.split("{", 1)[1].split("(", 1)[0].strip()
                raise Unexpected(f"{operation} as {who}: {body['errors']}")
            return {"__typename": "Error", "code": codes[0]}
        data = body["data"]
        return next(iter(data.values()))

    def fault(self, fault: Fault) -> _Faulted:
        return _Faulted(self, fault)

    def is_admin(self, who: str) -> bool:
        return who == "boss" or (who == "staff" and self.staff_is_admin)

    def admin_only(self, who: str, result: dict[str, Any], op: str) -> bool:
        """False (and checked) when a demoted admin was refused, as they must be."""
        if self.is_admin(who):
            return True
        assert result.get("code") in ("FORBIDDEN", "NOT_FOUND"), \
            f"{op} by the demoted {who} was not refused: {result}"
        return False

    # ---- setup --------------------------------------------------------------------------

    @initialize(stocks=st.tuples(st.integers(4, 9), st.integers(2, 6)))
    def shop(self, stocks: tuple[int, int]) -> None:
        async def setup() -> None:
            s = self.world.deps
            for name, role in USERS.items():
                await create_user(uow=s.uow(), passwords=s.passwords, clock=s.clock,
                                  email=f"{name}@chaos.test", password=PASSWORD, name=name,
                                  role=role, actor=None)
                body = await self.api.gql(LOGIN, {"email": f"{name}@chaos.test",
                                                  "password": PASSWORD})
                self.tokens[name] = body["login"]["token"]
                self.user_ids[name] = int(body["login"]["user"]["id"])
            for index, (price, stock) in enumerate(zip(PRICES, stocks, strict=True)):
                result = await self.gql(CREATE_PRODUCT, {"input": {
                    "sku": f"chaos-{index}", "name": f"Chaos {index}", "priceCents": price,
                    "initialStock": stock}}, "boss")
                product_id = int(result["product"]["id"])
                self.products.append(product_id)
                self.brought_in[product_id] = stock

        self.run(setup())

    # ---- operations (coroutines shared by the rules and the races) ------------------------

    async def _checkout(self, customer: str, lines: list[tuple[int, int]],
                        key: str | None, ship: str | None = None) -> OrderRef | None:
        items = [{"productId": str(self.products[p]), "quantity": q} for p, q in lines]
        cart: dict[int, int] = {}
        for p, q in lines:
            cart[self.products[p]] = cart.get(self.products[p], 0) + q
        known = self.keys.get((customer, key)) if key else None
        existing = self._keyed_order(customer, key)
        result = await self.gql(CHECKOUT, {"input": {
            "items": items, "idempotencyKey": key,
            "shippingAddress": ADDRESSES[ship] if ship else None}}, customer)
        kind = result["__typename"]
        order = result.get("order")
        self.say(f"checkout {customer} {lines} key={key} ship={ship} -> {kind} "
                 f"{result.get('code') or ''}"
                 f"{order['id'] + ' ' + order['status'] if order else ''}")
        if existing is not None and known is not None:
            if known == (cart, ship):  # a retry: the order the key made, whatever happened
                same = kind == "CheckoutPayload" and int(order["id"]) == existing
                assert same, f"key {key} made order {existing}; the same cart got {result}"
            else:
                assert kind != "CheckoutPayload", \
                    f"key {key} of order {existing} accepted another cart or address: {result}"
        if key and (customer, key) not in self.keys and \
                self._keyed_order(customer, key) is not None:
            self.keys[(customer, key)] = (cart, ship)
        if kind != "CheckoutPayload":
            return None
        ref = OrderRef(int(order["id"]), customer)
        self.intents[ref.id] = (order.get("payment") or {}).get("intentId")
        return ref

    def _keyed_order(self, customer: str, key: str | None) -> int | None:
        if not key:
            return None
        found = self.world.db.rows(
            "SELECT id FROM orders WHERE customer_id = %s AND idempotency_key = %s",
            (self.user_ids[customer], key))
        return int(found[0][0]) if found else None

    async def _pay(self, ref: OrderRef, card: str, label: str = "pay") -> str:
        method = await self.world.customer_side.card(CARDS[card])
        result = await self.gql(PAY, {"id": str(ref.id), "pm": method}, ref.owner)
        kind, code = result["__typename"], result.get("code")
        status = (result.get("order") or {}).get("status")
        if kind == "PayOrderPayload" and status == "PAID":
            self.claims.append(Claim("paid", ref.id, f"{label} {ref!r} card={card}"))
        if code == "PAYMENT_DECLINED":
            self.claims.append(Claim("declined", ref.id, f"{label} {ref!r} card={card}"))
        return f"{label} {ref!r} card={card} -> {kind} {code or status or ''}" + \
            (" requiresAction" if result.get("requiresAction") else "")

    async def _sync(self, ref: OrderRef, who: str) -> str:
        result = await self.gql(SYNC, {"id": str(ref.id)}, who)
        return f"sync {ref!r} as {who} -> {_summary(result)}"

    async def _cancel(self, ref: OrderRef, who: str) -> str:
        result = await self.gql(CANCEL, {"id": str(ref.id)}, who)
        if who == "staff" and not self.staff_is_admin:
            assert result["__typename"] != "OrderPayload", \
                f"the demoted staff cancelled {ref!r}, which is not theirs: {result}"
        if result["__typename"] == "OrderPayload" and \
                result["order"]["status"] == "CANCELLED":
            self.claims.append(Claim("cancelled", ref.id, f"cancel {ref!r} as {who}"))
        return f"cancel {ref!r} as {who} -> {_summary(result)}"

    async def _fulfil(self, ref: OrderRef, who: str) -> str:
        result = await self.gql(FULFIL, {"id": str(ref.id)}, who)
        if self.admin_only(who, result, "fulfillOrder") and \
                result["__typename"] == "OrderPayload" and \
                result["order"]["status"] == "FULFILLED":
            self.claims.append(Claim("fulfilled", ref.id, f"fulfil {ref!r} as {who}"))
        return f"fulfil {ref!r} as {who} -> {_summary(result)}"

    async def _refund(self, ref: OrderRef, who: str) -> str:
        result = await self.gql(REFUND, {"id": str(ref.id)}, who)
        if self.admin_only(who, result, "refundOrder") and \
                result["__typename"] == "OrderPayload" and \
                result["order"]["status"] == "REFUNDED":
            self.claims.append(Claim("refunded", ref.id, f"refund {ref!r} as {who}"))
        return f"refund {ref!r} as {who} -> {_summary(result)}"

    async def _deliver_for(self, ref: OrderRef) -> str:
        await self.world.feed.poll()
        event = self.world.feed.for_intent(self.intents.get(ref.id))
        if event is None:
            return f"webhook for {ref!r}: none queued"
        return f"webhook {await self.world.feed.deliver(event)}"

    async def _browser_pays(self, ref: OrderRef, card: str) -> str:
        """The customer's other tab confirms at the provider (Stripe.js), unseen by the app."""
        intent_id = self.intents.get(ref.id)
        if not intent_id:
            return f"browser pays {ref!r}: no intent"
        side = self.world.customer_side
        try:
            method = await side.card(CARDS[card])
            await side.client.v1.payment_intents.update_async(
                intent_id, params={"payment_method": method})
            intent = await side.client.v1.payment_intents.confirm_async(intent_id)
            outcome = str(intent.status)
        except Exception as error:  # declines and refusals are the provider's answer
            outcome = f"refused ({type(error).__name__}: {getattr(error, 'user_message', '')})"
        return f"browser pays {ref!r} card={card} at the provider -> {outcome}"

    async def _three_d_secure(self, ref: OrderRef, success: bool) -> str:
        intent_id = self.intents.get(ref.id)
        if not intent_id:
            return f"3-D Secure {ref!r}: no intent"
        stripe = self.world.stripe
        secret = (await stripe.get(f"/v1/payment_intents/{intent_id}")).json()["client_secret"]
        response = await stripe.post(f"/v1/payment_intents/{intent_id}/_authenticate",
                                     data={"client_secret": secret,
                                           "success": "true" if success else "false"})
        status = response.json().get("status") if response.status_code == 200 else \
            f"{response.status_code}"
        return f"3-D Secure {ref!r} success={success} -> {status}"

    async def _expire_and_sweep(self) -> str:
        self.world.clock.advance(RESERVATION_TTL + timedelta(seconds=1))
        report = await self.world.sweep()
        return f"time +{RESERVATION_TTL}, sweep -> {report}"

    # ---- rules: the public operations ---------------------------------------------------

    @rule(target=orders, customer=st.sampled_from(["alice", "bob"]),
          lines=st.lists(st.tuples(st.integers(0, 1), st.sampled_from([1, 2, 1, 3, 1, 2, 600])),
                         min_size=1, max_size=3),
          key=st.sampled_from([None, None, "k1", None, None, "k2"]), fault=FAULTS,
          ship=st.sampled_from([None, "home", "office", "home"]))
    def checkout(self, customer: str, lines: list[tuple[int, int]], key: str | None,
                 fault: Fault, ship: str | None = None) -> Any:
        with self.fault(fault):
            ref = self.run(self._checkout(customer, lines, key, ship))
        return ref or OrderRef(0, customer)

    @rule(target=orders, customer=st.sampled_from(["alice", "bob"]),
          product=st.integers(0, 1), quantity=st.integers(1, 2), fault=FAULTS,
          ship=st.sampled_from([None, "home"]))
    def paid_order(self, customer: str, product: int, quantity: int, fault: Fault,
                   ship: str | None = None) -> Any:
        """The usual journey in one step: checkout, then pay with a good card."""
        ref = self.run(self._checkout(customer, [(product, quantity)], None, ship))
        if ref is None:
            return OrderRef(0, customer)
        with self.fault(fault):
            self.say(self.run(self._pay(ref, "ok")))
        return ref

    @rule(order=orders, card=st.sampled_from(["ok", "declined", "3ds"]), fault=FAULTS)
    def pay(self, order: OrderRef, card: str, fault: Fault) -> None:
        if not order.id:
            return
        with self.fault(fault):
            self.say(self.run(self._pay(order, card)))

    @rule(order=orders, who=st.sampled_from(["owner", "boss"]), fault=FAULTS)
    def sync_payment(self, order: OrderRef, who: str, fault: Fault) -> None:
        if not order.id:
            return
        with self.fault(fault):
            self.say(self.run(self._sync(order, order.owner if who == "owner" else who)))

    @rule(order=orders, who=st.sampled_from(["owner", "boss", "staff"]), fault=FAULTS)
    def cancel(self, order: OrderRef, who: str, fault: Fault) -> None:
        if not order.id:
            return
        with self.fault(fault):
            self.say(self.run(self._cancel(order, order.owner if who == "owner" else who)))

    @rule(order=orders, who=st.sampled_from(["boss", "staff"]))
    def fulfil(self, order: OrderRef, who: str) -> None:
        if not order.id:
            return
        self.say(self.run(self._fulfil(order, who)))

    @rule(order=orders, who=st.sampled_from(["boss", "staff"]), fault=FAULTS)
    def refund(self, order: OrderRef, who: str, fault: Fault) -> None:
        if not order.id:
            return
        with self.fault(fault):
            self.say(self.run(self._refund(order, who)))

    # Few rules for the catalog and roles, each with several variants: Hypothesis picks
    # rules evenly, and most steps should be about orders and money.

    @rule(product=st.integers(0, 1),
          change=st.sampled_from([("adjust", 4), ("set", 5), ("adjust", -1), ("set", 2000),
                                  ("adjust", 1), ("set", 0), ("adjust", -3), ("set", 1)]),
          who=st.sampled_from(["boss", "staff"]))
    def stock(self, product: int, change: tuple[str, int], who: str) -> None:
        """setStock (absolute) or adjustStock (relative)."""
        product_id, (how, value) = self.products[product], change
        if how == "set":
            before = int(self.world.db.rows(
                "SELECT available FROM inventory WHERE product_id = %s", (product_id,))[0][0])
            result = self.run(self.gql(SET_STOCK, {"productId": str(product_id),
                                                   "available": value}, who))
            delta = value - before
        else:
            result = self.run(self.gql(ADJUST_STOCK, {"productId": str(product_id),
                                                      "delta": value, "reason": "chaos"}, who))
            delta = value
        if self.admin_only(who, result, f"{how}Stock") and \
                result["__typename"] == "StockPayload":
            self.brought_in[product_id] += delta
        self.say(f"{how}Stock product{product} {value} as {who} -> {_summary(result)}")

    @rule(change=st.sampled_from(["product0 on sale", "product1 on sale", "product0 off sale",
                                  "product1 off sale", "staff CUSTOMER", "staff ADMIN"]))
    def admin_setting(self, change: str) -> None:
        """updateProduct(active) or setUserRole for the second admin."""
        subject, value = change.split(" ", 1)
        if subject == "staff":
            result = self.run(self.gql(SET_ROLE, {"id": str(self.user_ids["staff"]),
                                                  "role": value}, "boss"))
            assert result["__typename"] == "UserPayload", result
            self.staff_is_admin = value == "ADMIN"
        else:
            product_id = self.products[int(subject[-1])]
            result = self.run(self.gql(SET_ACTIVE, {"id": str(product_id),
                                                    "active": value == "on sale"}, "boss"))
        self.say(f"{change} -> {_summary(result)}")

    # ---- rules: the customer's browser at the provider, and the provider itself -------

    @rule(order=orders, action=st.sampled_from(["pays ok", "3-D Secure ok", "pays declined",
                                                "3-D Secure fails"]))
    def browser(self, order: OrderRef, action: str) -> None:
        """What Stripe.js does in the customer's (other) tab, unseen by the app."""
        if not order.id:
            return
        if action.startswith("pays"):
            self.say(self.run(self._browser_pays(order, action.split()[1])))
        else:
            self.say(self.run(self._three_d_secure(order, action.endswith("ok"))))

    @rule(order=orders, change=st.sampled_from(["currency eur", "second intent paid",
                                                "another shop paid"]))
    def provider(self, order: OrderRef, change: str) -> None:
        """The capture will disagree with the order (issue 10 item 3), the order is paid
        through a second intent with the same metadata (item 5), or another shop on the same
        account is paid for its own order with the same number (item 6)."""
        if not order.id:
            return
        intent_id = self.intents.get(order.id)
        if change != "currency eur":
            self.say(self.run(self._second_intent(order, foreign=change.startswith("another"))))
        elif intent_id:
            self.say(self.run(self._change_currency(order, intent_id)))

    async def _change_currency(self, ref: OrderRef, intent_id: str) -> str:
        stripe = self.world.stripe
        status = (await stripe.get(f"/v1/payment_intents/{intent_id}")).json().get("status")
        if status not in ("requires_payment_method", "requires_confirmation"):
            return f"provider: {intent_id} of {ref!r} is {status}, its currency stays"
        response = await stripe.post(f"/v1/payment_intents/{intent_id}",
                                     data={"currency": "eur"})
        return f"provider: {intent_id} of {ref!r} now in eur -> {response.status_code}"

    async def _second_intent(self, ref: OrderRef, *, foreign: bool = False) -> str:
        """A copy of the order's intent, paid. ``foreign``: another shop on the same Stripe
        account opened it for its own order with the same number (every metadata value
        but order_id differs, e.g. its installation id), and the app must leave it alone."""
        intent_id = self.intents.get(ref.id)
        if not intent_id:
            return f"second intent for {ref!r}: no first intent"
        stripe = self.world.stripe
        first = (await stripe.get(f"/v1/payment_intents/{intent_id}")).json()
        data = {"amount": str(first["amount"]), "currency": first["currency"],
                "payment_method_types[]": "card"}
        for name, value in (first.get("metadata") or {}).items():
            data[f"metadata[{name}]"] = "neighbour-shop" if foreign and name != "order_id" \
                else value
        if foreign:
            data["metadata[shop]"] = "neighbour-shop"
        created = (await stripe.post("/v1/payment_intents", data=data)).json()
        if foreign:
            self.foreign_intents.add(created["id"])
        method = await self.world.customer_side.card(CARD_OK)
        await stripe.post(f"/v1/payment_intents/{created['id']}",
                          data={"payment_method": method})
        confirmed = await stripe.post(f"/v1/payment_intents/{created['id']}/confirm")
        return f"{'another shop' if foreign else 'second'} intent {created['id']} for " \
               f"{ref!r} -> {confirmed.json().get('status')}"

    @rule(minutes=st.sampled_from([1, 6, 16]))
    def time_passes(self, minutes: int) -> None:
        self.world.clock.advance(timedelta(minutes=minutes))
        self.say(f"time +{minutes} min")

    @rule(fault=FAULTS)
    def sweeper_pass(self, fault: Fault) -> None:
        with self.fault(fault):
            report = self.run(self.world.sweep())
        self.say(f"sweep -> {report}")

    # ---- rules: webhook deliveries ------------------------------------------------------

    @rule(action=st.sampled_from(["deliver", "deliver", "drop", "duplicate", "stale"]),
          pick=st.integers(0, 7), fault=FAULTS)
    def webhook(self, action: str, pick: int, fault: Fault) -> None:
        """Deliver any queued event (in any order, late), lose one until the end, deliver
        one again, or deliver one with a stale signature (refused, stays queued)."""
        feed = self.world.feed
        if action == "duplicate":
            event = feed.delivered[pick % len(feed.delivered)] if feed.delivered else None
        else:
            event = feed.pick(pick, droppable_only=action == "drop")
        if event is None:
            return
        if action == "drop":
            feed.drop(event)
            self.say(f"webhook {event['type']} {event['id']} ({intent_of(event)}) lost")
            return
        with self.fault(fault):
            delivery = self.run(feed.deliver(event, stale=action == "stale"))
        self.say(f"webhook {action} {delivery}")
        if action == "stale":
            assert delivery.status == 400, f"a stale signature was accepted: {delivery}"
        else:
            assert delivery.status in (200, 503), f"a signed event was refused: {delivery}"

    # ---- rules: concurrency -------------------------------------------------------------

    @rule(order=orders, race=st.sampled_from(RACES), fault=FAULTS)
    def race(self, order: OrderRef, race: str, fault: Fault) -> None:
        if not order.id:
            return
        ops: dict[str, Callable[[], Awaitable[str]]] = {
            "refund": lambda: self._refund(order, "boss"),
            "fulfil": lambda: self._fulfil(order, "boss"),
            "pay": lambda: self._pay(order, "ok"),
            "cancel": lambda: self._cancel(order, order.owner),
            "admin-cancel": lambda: self._cancel(order, "boss"),
            "sync": lambda: self._sync(order, order.owner),
            "webhook": lambda: self._deliver_for(order),
            "expire": self._expire_and_sweep,
            "browser-pay": lambda: self._browser_pays(order, "ok"),
            "3ds": lambda: self._three_d_secure(order, True),
        }

        async def together() -> list[str]:
            first, _, rest = race.rpartition(", then ")
            answers = [await ops[first]()] if first else []
            if "webhook" in rest:
                await self.world.feed.poll()
            return answers + list(await asyncio.gather(*(ops[name]()
                                                         for name in rest.split("+"))))

        with self.fault(fault):
            answers = self.run(together())
        self.say(f"race {race} on {order!r}: " + " | ".join(answers))

    @rule(customer=st.sampled_from(["alice", "bob"]), product=st.integers(0, 1),
          quantity=st.integers(1, 3), against=st.sampled_from(["same-key", "adjust",
                                                                 "deactivate"]))
    def race_checkout(self, customer: str, product: int, quantity: int, against: str) -> None:
        self.races += 1
        key = f"race-{self.races}"  # a fresh key: the double submit of one cart

        async def together() -> list[Any]:
            first = self._checkout(customer, [(product, quantity)], key, "office")
            if against == "same-key":
                second: Awaitable[Any] = self._checkout(customer, [(product, quantity)], key,
                                                        "office")
            elif against == "adjust":
                second = self.gql(ADJUST_STOCK, {"productId": str(self.products[product]),
                                                 "delta": -1, "reason": "race"}, "boss")
            else:
                second = self.gql(SET_ACTIVE, {"id": str(self.products[product]),
                                               "active": False}, "boss")
            return list(await asyncio.gather(first, second))

        first, second = self.run(together())
        if against == "same-key" and (first is not None or second is not None):
            assert first == second, f"one key and one cart sent twice at once gave {first!r} " \
                                    f"and {second!r}"
        if against == "adjust" and second.get("__typename") == "StockPayload":
            self.brought_in[self.products[product]] -= 1
        self.say(f"race checkout {customer} product{product} x{quantity} with {against}: "
                 f"{first!r} | {_summary(second) if isinstance(second, dict) else second!r}")

    # ---- the invariant --------------------------------------------------------------------

    @invariant()
    def money_and_stock_hold(self) -> None:
        if not self.products:
            return
        STATS["steps checked"] += 1
        problems = violations(self.world.db, self.run(self._observe()), self.brought_in,
                              self.claims, foreign=self.foreign_intents, shipping=SHIPPING)
        assert not problems, "invariant broken:\n  " + "\n  ".join(problems)
        self.settled = True

    async def _observe(self) -> ProviderView:
        await self.world.feed.poll()
        return await provider_view(self.world.stripe)

    def teardown(self) -> None:
        """Every held event arrives, every order is synced, every reservation expires and
        the sweeper runs: nothing may be owed any more."""
        if not self.settled or not self.products:
            return
        for line in self.run(self._settle()):
            self.say(line)
        self.flush_notes()
        for (status,) in self.world.db.rows("SELECT status FROM orders"):
            STATS[f"order ended {status}"] += 1
        problems = violations(self.world.db, self.run(provider_view(self.world.stripe)),
                              self.brought_in, self.claims, final=True,
                              foreign=self.foreign_intents, shipping=SHIPPING)
        assert not problems, "after the final settle:\n  " + "\n  ".join(problems)

    async def _settle(self) -> list[str]:
        world, feed, lines = self.world, self.world.feed, []
        world.proxy.disarm()

        async def drain() -> None:
            await feed.poll()
            for event in list(feed.pending):
                lines.append(f"settle: webhook {await feed.deliver(event)}")

        await drain()
        for order_id in sorted(self.intents):
            await self.gql(SYNC, {"id": str(order_id)}, "boss")
        world.clock.advance(RESERVATION_TTL + timedelta(minutes=6))
        for _ in range(2):
            lines.append(f"settle: sweep -> {await world.sweep()}")
        for event in list(feed.lost):  # Stripe's last retry
            feed.lost.remove(event)
            feed.pending.append(event)
        await drain()
        world.clock.advance(timedelta(days=1))  # past any backoff of a failing row
        lines.append(f"settle: a day later, sweep -> {await world.sweep()}")
        await drain()
        lines.append(f"settle: sweep -> {await world.sweep()}")
        return lines


def _summary(result: dict[str, Any]) -> str:
    kind = result.get("__typename")
    if result.get("code"):
        return f"{kind} {result['code']}"
    for field in ("order", "stock", "user", "product"):
        if isinstance(result.get(field), dict):
            value = result[field]
            return f"{kind} {value.get('status') or value.get('role') or value}"
    return str(kind)


class _Faulted:
    """Arms the proxy for one operation and notes what it injected."""

    def __init__(self, machine: ChaosMachine, fault: Fault) -> None:
        self.machine, self.fault = machine, fault

    def __enter__(self) -> None:
        self.machine.world.proxy.arm(self.fault)

    def __exit__(self, *exc: object) -> None:
        injected = self.machine.world.proxy.disarm()
        if injected:
            self.machine.say(f"  provider faults: {injected}")
            STATS["provider faults injected"] += len(injected)


@pytest.fixture(scope="module")
def world(pg_database: str) -> Iterator[World]:
    started = World(pg_database).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.timeout(TIMEOUT)
def test_money_and_stock_hold_under_chaos(world: World) -> None:
    global WORLD
    WORLD = world
    replay = f"make chaos CHAOS_SEED={SEED}" if SOAK else \
        f"CHAOS_SEED={SEED} CHAOS_EXAMPLES={EXAMPLES} CHAOS_STEPS={STEPS} " \
        "pytest tests/chaos/test_model.py"
    print(f"chaos: seed {SEED} ({EXAMPLES} examples x {STEPS} steps); replay: {replay}")
    _limit_shrinking(SHRINK_SECONDS)
    factory = seed(SEED)(lambda: ChaosMachine())
    started = time.monotonic()
    try:
        run_state_machine_as_test(factory, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
            print_blob=True, suppress_health_check=list(HealthCheck)))
    except BaseException as failure:
        failure.add_note(f"chaos: seed {SEED}; replay: {replay}")
        raise
    finally:
        WORLD = None
        print(f"chaos: {time.monotonic() - started:.1f} s; reached:")
        for name, count in sorted(STATS.items()):
            print(f"  {count:5d}  {name}")


# The interleavings issue 10 names, replayed step by step through the same machine and
# invariant (a Hypothesis run finds them only by chance in a few examples). Orders are named
# by the index of their creation; races are run three times over.
NONE = Fault.none()
KNOWN: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "item 1: refund racing fulfil": [
        *[("paid_order", {"customer": c, "product": 0, "quantity": 1, "fault": NONE})
          for c in ("alice", "bob", "alice")],
        *[("race", {"order": i, "race": "refund+fulfil", "fault": NONE}) for i in range(3)],
    ],
    "item 2: Pay again after the browser paid": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": None, "fault": NONE,
                      "ship": "home"}),
        ("browser", {"order": 0, "action": "pays ok"}),
        ("pay", {"order": 0, "card": "ok", "fault": NONE}),
    ],
    "item 2: Pay pressed twice at once": [
        *[("checkout", {"customer": c, "lines": [(0, 1)], "key": None, "fault": NONE})
          for c in ("alice", "bob", "alice")],
        *[("race", {"order": i, "race": "pay+pay", "fault": NONE}) for i in range(3)],
    ],
    "item 3: a capture in another currency": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": None, "fault": NONE,
                      "ship": "home"}),
        ("provider", {"order": 0, "change": "currency eur"}),
        ("pay", {"order": 0, "card": "ok", "fault": NONE}),
    ],
    "item 5: a second payment whose refund fails": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": None, "fault": NONE}),
        ("provider", {"order": 0, "change": "second intent paid"}),
        ("webhook", {"action": "deliver", "pick": 0, "fault": Fault("500", "refund", 3)}),
    ],
    "item 6: another shop's payment for an order with our number": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": None, "fault": NONE}),
        ("provider", {"order": 0, "change": "another shop paid"}),
        ("webhook", {"action": "deliver", "pick": 0, "fault": NONE}),
    ],
    # Found by this machine on ed481e2..62e6225, fixed by 426044f: news other than a success
    # about an intent whose amount or currency no longer match the order (here: the
    # sweeper's own cancel at expiry; or a decline) was refused as a mismatch and the order
    # stayed PAYMENT_PENDING, holding its stock for ever.
    "new: an unpaid intent in another currency never expires": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": None, "fault": NONE}),
        ("provider", {"order": 0, "change": "currency eur"}),
    ],
    **{f"race: {race}": [
        *[("checkout", {"customer": c, "lines": [(0, 1)], "key": None, "fault": NONE,
                        "ship": ship})
          for c, ship in (("alice", None), ("bob", "home"), ("alice", "office"))],
        *[("race", {"order": i, "race": race, "fault": NONE}) for i in range(3)],
    ] for race in ("pay+cancel", "browser-pay, then expire+webhook",
                   "browser-pay, then cancel+webhook", "browser-pay, then webhook+webhook+sync")},
    # Found by this machine at 9131425 (make chaos CHAOS_SEED=101), fixed by bffea88: the
    # customer's other tab paid; Pay in the app is refused by the provider (the intent
    # already succeeded), and the app cannot read the intent's real status (the provider is
    # unreachable for that read): it answered PAYMENT_DECLINED for money it had taken.
    "new: Pay after the browser paid, the status read failing": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": None, "fault": NONE}),
        ("browser", {"order": 0, "action": "pays ok"}),
        ("pay", {"order": 0, "card": "ok", "fault": Fault("500", "retrieve", 3)}),
    ],
    # Issue 14: shipping. The same key with another address is another cart; shipping is
    # charged on a shipped order under the threshold, not at it, and never without an address.
    "shipping: one key, two addresses": [
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": "k1", "fault": NONE,
                      "ship": "home"}),
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": "k1", "fault": NONE,
                      "ship": "office"}),
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": "k1", "fault": NONE,
                      "ship": None}),
        ("checkout", {"customer": "alice", "lines": [(0, 1)], "key": "k1", "fault": NONE,
                      "ship": "home"}),
        ("pay", {"order": 0, "card": "ok", "fault": NONE}),
    ],
    "shipping: at the free threshold and under it": [
        ("paid_order", {"customer": "alice", "product": 1, "quantity": 2, "fault": NONE,
                        "ship": "home"}),
        ("paid_order", {"customer": "bob", "product": 1, "quantity": 1, "fault": NONE,
                        "ship": "home"}),
        ("paid_order", {"customer": "bob", "product": 0, "quantity": 1, "fault": NONE}),
    ],
    "item 8: duplicate lines over the per-line cap": [
        ("stock", {"product": 0, "change": ("set", 2000), "who": "boss"}),
        ("checkout", {"customer": "alice", "lines": [(0, 600), (0, 600)], "key": None,
                      "fault": NONE}),
    ],
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_interleavings(world: World, name: str) -> None:
    global WORLD
    WORLD = world
    try:
        machine = ChaosMachine()
        machine.shop(stocks=(5, 5))
        machine.money_and_stock_hold()
        made: list[OrderRef] = []
        for rule_name, arguments in KNOWN[name]:
            if "order" in arguments:
                if len(made) <= arguments["order"]:
                    continue  # that order was never made (e.g. a refused checkout)
                arguments = {**arguments, "order": made[arguments["order"]]}
            print(f"state.{rule_name}({arguments})")
            result = getattr(machine, rule_name)(**arguments)
            if isinstance(result, OrderRef):
                made.append(result)
            machine.money_and_stock_hold()
        machine.teardown()
    finally:
        WORLD = None


def _limit_shrinking(seconds: int) -> None:
    """Hypothesis shrinks for up to 5 minutes; bound it so CI answers in time."""
    from hypothesis.internal.conjecture import engine

    if hasattr(engine, "MAX_SHRINKING_SECONDS"):
        engine.MAX_SHRINKING_SECONDS = seconds
