"""Customer email through the outbox: one email per state change, written in the change's
transaction, delivered over real SMTP (to the app's local sink), never twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.mail.smtp import SmtpMailer
from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from ordergraph.domain.mail import QueuedMail
from ordergraph.domain.services.mail import deliver_mail
from ordergraph.domain.services.sweeper import sweep
from ordergraph.settings import Settings
from ordergraph.web.app import Overrides
from tests.support import (
    CANCEL,
    CARD_OK,
    FULFILL,
    PAY,
    REFUND,
    SYNC,
    Api,
    Customer,
    rows,
    running_api,
    settings_for,
)

MAILBOX = "query Mail($first: Int) { localMailbox(first: $first) { id from to subject text html } }"


async def deliver(api: Api):
    s = api.deps
    return await deliver_mail(uow=s.uow(), mailer=s.mailer, clock=s.clock)


async def mailbox(api: Api, admin: str) -> list[dict[str, Any]]:
    """What the local SMTP sink received, oldest first."""
    return list(reversed((await api.gql(MAILBOX, {"first": 100}, token=admin))["localMailbox"]))


def outbox(url: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT kind, recipient, status, attempts FROM outbox ORDER BY id")


async def paid_order(api: Api, token: str, product: str, customer_side: Customer,
                     quantity: int = 1) -> str:
    order = (await api.checkout(token, [(product, quantity)]))["order"]
    method = await customer_side.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=token))["payOrder"]
    assert paid["order"]["status"] == "PAID", paid
    return order["id"]


async def test_every_state_change_emails_the_customer_once_over_smtp(
        api: Api, admin: str, customer_side: Customer) -> None:
    lamp = await api.create_product(admin, sku="desk-lamp", name="Desk Lamp", price_cents=2500)
    mug = await api.create_product(admin, sku="mug", name="Blue <Mug>", price_cents=900)
    ada = await api.register("ada@example.com", name="Ada")

    order = (await api.checkout(ada, [(lamp, 2), (mug, 1)]))["order"]
    assert outbox(api.settings.database_url) == []  # placing an order sends nothing yet
    method = await customer_side.card(CARD_OK)
    assert (await api.gql(PAY, {"id": order["id"], "pm": method}, token=ada)
            )["payOrder"]["order"]["status"] == "PAID"
    assert (await api.gql(FULFILL, {"id": order["id"]}, token=admin)
            )["fulfillOrder"]["order"]["status"] == "FULFILLED"
    cancelled = (await api.checkout(ada, [(mug, 1)]))["order"]
    await api.gql(CANCEL, {"id": cancelled["id"]}, token=ada)
    refunded = await paid_order(api, ada, mug, customer_side)
    assert (await api.gql(REFUND, {"id": refunded}, token=admin)
            )["refundOrder"]["order"]["status"] == "REFUNDED"

    assert [row[:3] for row in outbox(api.settings.database_url)] == [
        ("ORDER_CONFIRMED", "ada@example.com", "PENDING"),
        ("ORDER_SHIPPED", "ada@example.com", "PENDING"),
        ("ORDER_CANCELLED", "ada@example.com", "PENDING"),
        ("ORDER_CONFIRMED", "ada@example.com", "PENDING"),
        ("ORDER_REFUNDED", "ada@example.com", "PENDING")]
    report = await deliver(api)
    assert (report.sent, report.failed) == (5, 0)
    assert (await deliver(api)).sent == 0  # sent once

    received = await mailbox(api, admin)
    assert [mail["subject"] for mail in received] == [
        f"Order #{order['id']} confirmed", f"Order #{order['id']} has shipped",
        f"Order #{cancelled['id']} cancelled", f"Order #{refunded} confirmed",
        f"Order #{refunded} refunded"]
    assert {tuple(mail["to"]) for mail in received} == {("ada@example.com",)}
    assert received[0]["from"] == "no-reply@localhost"
    confirmation = received[0]
    assert "Hello Ada," in confirmation["text"]
    assert "2 x Desk Lamp at $25.00 = $50.00" in confirmation["text"]
    assert "1 x Blue <Mug> at $9.00 = $9.00" in confirmation["text"]
    assert "Total: $59.00" in confirmation["text"]
    assert f"http://127.0.0.1:8000/#/orders/{order['id']}" in confirmation["text"]
    assert "Blue &lt;Mug&gt;" in confirmation["html"]
    assert "<Mug>" not in confirmation["html"]
    assert "$59.00" in confirmation["html"]
    assert "You have not been charged" in received[2]["text"]
    assert "We have refunded $9.00" in received[4]["text"]
    assert {row[2] for row in outbox(api.settings.database_url)} == {"SENT"}


async def test_the_confirmation_shows_shipping_and_where_it_ships(
        pg_url: str, stripe_emulator: LocalStripe, customer_side: Customer) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            shipping_flat_cents=499, free_shipping_over_cents=10_000)
    async with running_api(settings) as api:
        admin = await api.create_admin()
        lamp = await api.create_product(admin, sku="lamp", name="Lamp", price_cents=2500)
        ada = await api.register("ada@example.com", name="Ada")
        address = {"name": "Ada Lovelace", "line1": "12 St James's Square", "line2": None,
                   "city": "London", "postalCode": "SW1Y 4JH", "region": None,
                   "country": "GB"}
        order = (await api.checkout(ada, [(lamp, 2)], address=address))["order"]
        method = await customer_side.card(CARD_OK)
        assert (await api.gql(PAY, {"id": order["id"], "pm": method}, token=ada)
                )["payOrder"]["order"]["status"] == "PAID"
        assert (await deliver(api)).sent == 1
        [confirmation] = await mailbox(api, admin)
    text = confirmation["text"]
    assert "Subtotal: $50.00\nShipping: $4.99\nTotal: $54.99" in text
    assert "We have your payment of $54.99" in text
    assert "Ships to:\n  Ada Lovelace\n  12 St James's Square\n  SW1Y 4JH London\n  GB" in text
    assert "12 St James&#x27;s Square" in confirmation["html"]
    assert "$4.99" in confirmation["html"]


async def test_racing_finalizers_send_one_confirmation(
        api: Api, admin: str, customer_side: Customer) -> None:
    """The browser paid; payOrder's answer, syncPayment and the webhook race: one PAID
    transition, so one email."""
    product = await api.create_product(admin, sku="race")
    token = await api.register("racer@example.com")
    order = (await api.checkout(token, [(product, 1)]))["order"]
    await customer_side.pay_directly(order["payment"]["intentId"])

    answers = await asyncio.gather(*[api.gql(SYNC, {"id": order["id"]}, token=token)
                                     for _ in range(4)])

    assert {a["syncPayment"]["order"]["status"] for a in answers} == {"PAID"}
    assert [row[0] for row in outbox(api.settings.database_url)] == ["ORDER_CONFIRMED"]


@pytest.fixture
async def timed_api(pg_url: str, stripe_emulator: LocalStripe,
                    clock: OffsetClock) -> AsyncIterator[Api]:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(clock=clock, run_sweeper=False)) as api:
        yield api


async def test_an_expired_order_tells_the_customer(timed_api: Api, clock: OffsetClock) -> None:
    api = timed_api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="slow")
    token = await api.register("late@example.com")
    order = (await api.checkout(token, [(product, 1)]))["order"]
    clock.advance(timedelta(minutes=16))
    s = api.deps
    assert (await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)).expired == 1

    assert (await deliver(api)).sent == 1
    [mail] = await mailbox(api, admin)
    assert mail["subject"] == f"Order #{order['id']} cancelled"
    assert "its reservation expired before it was paid" in mail["text"]


async def test_a_failed_checkout_sends_nothing(api: Api, admin: str) -> None:
    """CREATED -> CANCELLED (the provider failed, said on the spot): no email."""
    product = await api.create_product(admin, sku="nope")
    token = await api.register("quiet@example.com")
    await api.deps.gateway.aclose()  # the provider is unreachable from now on
    result = await api.checkout(token, [(product, 1)])
    assert result["code"] == "PAYMENT_PROVIDER_ERROR"
    assert outbox(api.settings.database_url) == []


class Recording:
    """A mailer that takes its time and records what it was asked to send."""

    def __init__(self, inner: SmtpMailer) -> None:
        self.inner = inner
        self.sent: list[int] = []

    async def send(self, mail: QueuedMail) -> None:
        await asyncio.sleep(0.02)
        self.sent.append(mail.id)
        await self.inner.send(mail)


async def test_two_senders_at_once_never_send_one_email_twice(api: Api, admin: str) -> None:
    """Two instances' senders (each its own connection) claim with SKIP LOCKED."""
    for i in range(12):
        await api.register(f"reader{i}@example.com")
        await api.gql("mutation($e: String!) { requestPasswordReset(email: $e) { ok } }",
                      {"e": f"reader{i}@example.com"})
    s = api.deps
    mailer = Recording(s.mailer)

    reports = await asyncio.gather(*[
        deliver_mail(uow=s.uow(), mailer=mailer, clock=s.clock, batch=8) for _ in range(2)])
    while (await deliver_mail(uow=s.uow(), mailer=mailer, clock=s.clock, batch=8)).sent:
        pass

    assert sorted(mailer.sent) == sorted(set(mailer.sent))
    assert len(mailer.sent) == 12
    assert all(report.sent > 0 for report in reports)  # both took a share
    received = await mailbox(api, admin)
    assert sorted(mail["to"][0] for mail in received) == \
        sorted(f"reader{i}@example.com" for i in range(12))
    assert {row[2:] for row in outbox(api.settings.database_url)} == {("SENT", 1)}


async def test_a_send_that_fails_is_retried_with_backoff(timed_api: Api,
                                                         clock: OffsetClock) -> None:
    api = timed_api
    admin = await api.create_admin()
    await api.register("patient@example.com")
    await api.gql('mutation { requestPasswordReset(email: "patient@example.com") { ok } }')
    s = api.deps
    down = SmtpMailer(f"smtp://127.0.0.1:{free_port()}", sender="shop@example.com",
                      public_url="http://shop.test")  # nothing listens there

    report = await deliver_mail(uow=s.uow(), mailer=down, clock=s.clock)
    assert (report.sent, report.failed) == (0, 1)
    [(status, attempts, error)] = rows(api.settings.database_url,
                                       "SELECT status, attempts, last_error FROM outbox")
    assert (status, attempts) == ("PENDING", 1)
    assert "onnect" in error
    assert (await deliver(api)).sent == 0  # backing off: not due for a minute
    clock.advance(timedelta(seconds=61))
    assert (await deliver(api)).sent == 1
    assert [mail["subject"] for mail in await mailbox(api, admin)] == ["Reset your password"]


async def test_the_app_sends_by_itself(pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(run_sweeper=False, run_mail_sender=True)) as api:
        admin = await api.create_admin()
        await api.register("soon@example.com")
        await api.gql('mutation { requestPasswordReset(email: "soon@example.com") { ok } }')
        deadline = time.monotonic() + 5
        while not await mailbox(api, admin):
            assert time.monotonic() < deadline, "the sender loop sent nothing in 5 s"
            await asyncio.sleep(0.1)
        assert (await mailbox(api, admin))[0]["to"] == ["soon@example.com"]


async def test_the_mailbox_is_for_admins_and_local_mode_only(
        api: Api, admin: str, pg_url: str, stripe_emulator: LocalStripe) -> None:
    customer = await api.register("nosy@example.com")
    assert await api.error_code(MAILBOX, token=customer) == "FORBIDDEN"
    assert await api.error_code(MAILBOX) == "UNAUTHENTICATED"
    assert (await api.gql(MAILBOX, token=admin))["localMailbox"] == []

    real = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                        smtp_url="smtp://mail.example.com:587")
    async with running_api(real) as shop:
        boss = await shop.create_admin("boss2@example.com")
        assert shop.deps.local_mailbox is None
        assert (await shop.gql(MAILBOX, token=boss))["localMailbox"] is None


def test_smtp_urls_are_checked() -> None:
    from ordergraph.adapters.mail.smtp import parse_smtp_url
    from ordergraph.settings import SettingsError

    target = parse_smtp_url("smtps://me%40x.com:p%2Fss@mail.example.com")
    assert (target.hostname, target.port, target.use_tls, target.username, target.password) \
        == ("mail.example.com", 465, True, "me@x.com", "p/ss")
    assert parse_smtp_url("smtp://relay:2525").port == 2525
    assert parse_smtp_url("smtp://relay").port == 587
    for bad in ("http://relay", "smtp://", "smtp://relay:99999"):
        with pytest.raises(SettingsError, match="SMTP_URL"):
            Settings.from_env({"SMTP_URL": bad}, dotenv_path=None)


async def test_ordergraph_sweep_sends_the_mail_it_makes(pg_url: str,
                                                        stripe_emulator: LocalStripe) -> None:
    """Cron deployments: `ordergraph sweep` expires the order, then sends its email to
    SMTP_URL (here a sink of the test's own) in the same run."""
    import os
    import subprocess
    import sys

    from ordergraph.adapters.mail.sink import MailSink

    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            reservation_ttl=timedelta(seconds=1))
    async with running_api(settings) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="cron-mail", stock=1)
        customer = await api.register("cron-mail@example.com")
        await api.checkout(customer, [(product, 1)])
    await asyncio.sleep(1.2)
    sink = MailSink()
    await sink.start()
    try:
        env = {**os.environ, "DATABASE_URL": pg_url, "STRIPE_API_BASE": stripe_emulator.api_base,
               "SMTP_URL": sink.url, "MAIL_FROM": "Shop <shop@example.com>",
               "PUBLIC_URL": "https://shop.example.com"}
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "ordergraph.cli", "sweep"], env=env,
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "sweep: 1 expired" in result.stdout
        assert "mail: 1 sent, 0 failed" in result.stdout
        [mail] = sink.messages(limit=10)
        assert (mail.recipients, mail.sender) == (["cron-mail@example.com"], "shop@example.com")
        assert "cancelled" in mail.subject
        assert "https://shop.example.com/#/orders/" in mail.text
        # Without SMTP_URL (local mode) the mail is left for `serve`'s own sink.
        env.pop("SMTP_URL")
        again = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "ordergraph.cli", "sweep"], env=env,
            capture_output=True, text=True, timeout=60, check=False)
        assert "mail: none sent (no SMTP_URL" in again.stdout, again.stdout + again.stderr
    finally:
        await sink.stop()


class Hanging:
    async def send(self, mail: QueuedMail) -> None:
        await asyncio.sleep(3600)


async def test_a_hung_send_is_cut_off_within_its_lease(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never answers: the send is abandoned at SEND_DEADLINE, and no further
    send starts with less than that left of the lease (another sender could take the row)."""
    from ordergraph.domain.services import mail as delivery

    monkeypatch.setattr(delivery, "SEND_DEADLINE", timedelta(seconds=0.2))
    monkeypatch.setattr(delivery, "FIRST_RETRY", timedelta(seconds=0.3))
    for name in ("first", "second"):
        await api.register(f"{name}@example.com")
        await api.gql("mutation($e: String!) { requestPasswordReset(email: $e) { ok } }",
                      {"e": f"{name}@example.com"})
    s = api.deps
    started = time.monotonic()
    report = await deliver_mail(uow=s.uow(), mailer=Hanging(), clock=s.clock)
    assert time.monotonic() - started < 1
    assert (report.sent, report.failed) == (0, 1)
    assert "TimeoutError" in report.errors[0]
    assert [row[2:] for row in outbox(api.settings.database_url)] == [("PENDING", 1)] * 2


async def test_local_mode_on_sqlite(sqlite_url: str, stripe_emulator: LocalStripe) -> None:
    """`make run`'s database: the outbox, the sender and a password reset on SQLite."""
    settings = settings_for(sqlite_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings) as api:
        admin = await api.create_admin()
        old = await api.register("lite@example.com")
        await api.gql('mutation { requestPasswordReset(email: "lite@example.com") { ok } }')
        s = api.deps
        reports = await asyncio.gather(deliver_mail(uow=s.uow(), mailer=s.mailer, clock=s.clock),
                                       deliver_mail(uow=s.uow(), mailer=s.mailer, clock=s.clock))
        assert sorted(r.sent for r in reports) == [0, 1]
        [mail] = await mailbox(api, admin)
        token = mail["text"].split("token=", 1)[1].split()[0]
        result = (await api.gql(
            'mutation($t: String!) { resetPassword(token: $t, newPassword: "lite-password-2") '
            '{ __typename } }', {"t": token}))["resetPassword"]
        assert result["__typename"] == "AuthPayload"
        assert await api.error_code("{ me { id } }", token=old) == "UNAUTHENTICATED"
        assert await api.login("lite@example.com", "lite-password-2")
