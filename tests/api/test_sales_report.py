"""The admins' sales report: every number checked against a shop whose history we made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe
from tests.support import (
    CANCEL,
    CARD_OK,
    FULFILL,
    PAY,
    REFUND,
    STOCK,
    Api,
    Customer,
    rows,
    running_api,
    settings_for,
)

REPORT = """
query Sales($from: DateTime!, $to: DateTime!, $granularity: Granularity) {
  salesReport(from: $from, to: $to, granularity: $granularity) {
    from to granularity
    revenue { amount currency } grossSales { amount } refunds { amount }
    ordersPaid ordersRefunded averageOrderValue { amount currency }
    ordersByStatus { status count }
    checkoutsStarted checkoutsPaid conversionRate
    series { start revenue { amount } ordersPaid ordersRefunded }
    topProductsByUnits { product { sku } units revenue { amount } }
    topProductsByRevenue { product { sku } units revenue { amount } }
    runningOut { product { sku } available unitsPerDay daysLeft }
  }
}"""


@dataclass
class Shop:
    gadget: str
    widget: str
    orders: dict[str, str]  # name -> order id


async def paid_order(api: Api, side: Customer, customer: str,
                     items: list[tuple[str, int]]) -> str:
    order = (await api.checkout(customer, items))["order"]
    method = await side.card(CARD_OK)
    paid = (await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer))["payOrder"]
    assert paid["order"]["status"] == "PAID", paid
    return order["id"]


async def make_history(api: Api, admin: str, side: Customer) -> Shop:
    """Five checkouts: paid, paid then refunded, paid then fulfilled, cancelled, unpaid."""
    gadget = await api.create_product(admin, sku="gadget", price_cents=2500, stock=10)
    widget = await api.create_product(admin, sku="widget", price_cents=1000, stock=20)
    buyers = await api.customers(5)
    kept = await paid_order(api, side, buyers[0], [(gadget, 2)])  # 5000
    refunded = await paid_order(api, side, buyers[1], [(gadget, 1), (widget, 3)])  # 5500
    await api.gql(REFUND, {"id": refunded}, token=admin)
    shipped = await paid_order(api, side, buyers[2], [(widget, 4)])  # 4000
    await api.gql(FULFILL, {"id": shipped}, token=admin)
    cancelled = (await api.checkout(buyers[3], [(gadget, 1)]))["order"]["id"]
    await api.gql(CANCEL, {"id": cancelled}, token=buyers[3])
    unpaid = (await api.checkout(buyers[4], [(widget, 1)]))["order"]["id"]
    return Shop(gadget, widget, {"kept": kept, "refunded": refunded, "shipped": shipped,
                                 "cancelled": cancelled, "unpaid": unpaid})


def iso(at: datetime) -> str:
    return at.isoformat()


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def available(api: Api, admin: str, product: str) -> int:
    return (await api.gql(STOCK, {"id": product}, token=admin))["product"]["stock"]["available"]


def status_times(url: str, status: str) -> list[datetime]:
    """When orders entered `status`, from the audit log (what the report reads)."""
    found = rows(url, "SELECT at FROM audit_log WHERE action = 'ORDER_STATUS_CHANGED' "
                      "AND after->>'status' = %s", (status,))
    return [at for (at,) in found]


async def check_report(api: Api, admin: str, shop: Shop, paid_at: list[datetime],
                       refunded_at: list[datetime]) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(days=1), now + timedelta(hours=1)
    report = (await api.gql(REPORT, {"from": iso(start), "to": iso(end),
                                     "granularity": "HOUR"}, token=admin))["salesReport"]

    assert report["granularity"] == "HOUR"
    assert report["revenue"] == {"amount": 9000, "currency": "usd"}  # 14500 - 5500
    assert report["grossSales"]["amount"] == 5000 + 5500 + 4000
    assert report["refunds"]["amount"] == 5500
    assert (report["ordersPaid"], report["ordersRefunded"]) == (3, 1)
    assert report["averageOrderValue"] == {"amount": 4833, "currency": "usd"}  # 14500 / 3
    assert {s["status"]: s["count"] for s in report["ordersByStatus"]} == {
        "PAID": 1, "REFUNDED": 1, "FULFILLED": 1, "CANCELLED": 1, "PAYMENT_PENDING": 1}
    assert (report["checkoutsStarted"], report["checkoutsPaid"]) == (5, 3)
    assert report["conversionRate"] == pytest.approx(0.6)

    # Every hour from the one `from` falls in to the one `to` falls in; the money sits in
    # the hours the audit log dates the payments and the refund.
    series = report["series"]
    hours = int((hour_of(end) - hour_of(start)) / timedelta(hours=1)) + 1
    assert [b["start"] for b in series] == \
        [iso(hour_of(start) + timedelta(hours=h)) for h in range(hours)]
    expected: dict[str, list[int]] = {}  # bucket -> [revenue, orders paid, refunded]
    for at, cents in zip(paid_at, (5000, 5500, 4000), strict=True):
        bucket = expected.setdefault(iso(hour_of(at)), [0, 0, 0])
        bucket[0] += cents
        bucket[1] += 1
    for at in refunded_at:
        bucket = expected.setdefault(iso(hour_of(at)), [0, 0, 0])
        bucket[0] -= 5500
        bucket[2] += 1
    assert [[b["revenue"]["amount"], b["ordersPaid"], b["ordersRefunded"]] for b in series] \
        == [expected.get(b["start"], [0, 0, 0]) for b in series]

    # Sold and kept: 2 gadgets (5000) in the first order, 4 widgets (4000) in the shipped one.
    assert report["topProductsByUnits"] == [
        {"product": {"sku": "widget"}, "units": 4, "revenue": {"amount": 4000}},
        {"product": {"sku": "gadget"}, "units": 2, "revenue": {"amount": 5000}}]
    assert report["topProductsByRevenue"] == report["topProductsByUnits"][::-1]

    # About one day of the window has passed: 2 gadgets and 4 widgets a day.
    gadgets, widgets = (await available(api, admin, shop.gadget),
                        await available(api, admin, shop.widget))
    outlook = {row["product"]["sku"]: row for row in report["runningOut"]}
    assert outlook["gadget"]["available"] == gadgets
    assert outlook["widget"]["available"] == widgets
    assert outlook["gadget"]["unitsPerDay"] == pytest.approx(2, rel=1e-3)
    assert outlook["widget"]["unitsPerDay"] == pytest.approx(4, rel=1e-3)
    assert outlook["gadget"]["daysLeft"] == pytest.approx(gadgets / 2, rel=1e-3)
    assert outlook["widget"]["daysLeft"] == pytest.approx(widgets / 4, rel=1e-3)
    soonest = sorted(outlook.values(), key=lambda row: row["daysLeft"])
    assert [row["product"]["sku"] for row in report["runningOut"]] == \
        [row["product"]["sku"] for row in soonest]


async def test_every_number_of_the_report(api: Api, admin: str,
                                          customer_side: Customer) -> None:
    shop = await make_history(api, admin, customer_side)
    url = api.settings.database_url
    await check_report(api, admin, shop, sorted(status_times(url, "PAID")),
                       status_times(url, "REFUNDED"))


async def test_daily_buckets_and_an_empty_window(api: Api, admin: str,
                                                 customer_side: Customer) -> None:
    await make_history(api, admin, customer_side)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    daily = (await api.gql(REPORT, {"from": iso(today - timedelta(days=2)),
                                    "to": iso(today + timedelta(days=1))},
                           token=admin))["salesReport"]
    assert daily["granularity"] == "DAY"  # the default
    assert [b["start"] for b in daily["series"]] == \
        [iso(today + timedelta(days=d)) for d in (-2, -1, 0)]
    assert [b["revenue"]["amount"] for b in daily["series"]] == [0, 0, 9000]
    assert [b["ordersPaid"] for b in daily["series"]] == [0, 0, 3]

    before = (await api.gql(REPORT, {"from": iso(today - timedelta(days=30)),
                                     "to": iso(today - timedelta(days=1))},
                            token=admin))["salesReport"]
    assert before["revenue"]["amount"] == 0
    assert before["averageOrderValue"] is None
    assert before["conversionRate"] is None
    assert (before["ordersByStatus"], before["topProductsByUnits"], before["runningOut"]) == \
        ([], [], [])
    assert len(before["series"]) == 29


async def test_only_admins_read_it(api: Api, admin: str) -> None:
    now = datetime.now(UTC)
    window = {"from": iso(now - timedelta(days=1)), "to": iso(now)}
    customer = await api.register("nosy@example.com")
    assert await api.error_code(REPORT, window, token=customer) == "FORBIDDEN"
    assert await api.error_code(REPORT, window) in {"FORBIDDEN", "UNAUTHENTICATED"}


@pytest.mark.parametrize(("days", "granularity"), [
    (0, "DAY"),        # from == to
    (-1, "DAY"),       # backwards
    (367, "DAY"),      # over a year
    (32, "HOUR"),      # too many hourly buckets
])
async def test_bad_windows_are_validation_failures(api: Api, admin: str, days: int,
                                                   granularity: str) -> None:
    now = datetime.now(UTC)
    window = {"from": iso(now), "to": iso(now + timedelta(days=days)),
              "granularity": granularity}
    assert await api.error_code(REPORT, window, token=admin) == "VALIDATION_FAILED"


async def test_a_year_by_day_and_a_month_by_hour_are_fine(api: Api, admin: str) -> None:
    now = datetime.now(UTC)
    year = await api.gql(REPORT, {"from": iso(now - timedelta(days=366)), "to": iso(now)},
                         token=admin)
    assert len(year["salesReport"]["series"]) == 367  # a partial day at each end
    month = await api.gql(REPORT, {"from": iso(now - timedelta(days=31)), "to": iso(now),
                                   "granularity": "HOUR"}, token=admin)
    assert len(month["salesReport"]["series"]) == 31 * 24 + 1


async def test_sqlite_gives_the_same_report(sqlite_url: str, stripe_emulator: LocalStripe,
                                            customer_side: Customer) -> None:
    settings = settings_for(sqlite_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings) as api:
        admin = await api.create_admin()
        shop = await make_history(api, admin, customer_side)
        report = (await api.gql(REPORT, {
            "from": iso(datetime.now(UTC) - timedelta(days=1)),
            "to": iso(datetime.now(UTC) + timedelta(hours=1)), "granularity": "HOUR"},
            token=admin))["salesReport"]
        assert report["revenue"]["amount"] == 9000
        assert (report["checkoutsStarted"], report["checkoutsPaid"]) == (5, 3)
        assert sum(b["revenue"]["amount"] for b in report["series"]) == 9000
        assert [p["units"] for p in report["topProductsByUnits"]] == [4, 2]
        assert {p["product"]["sku"] for p in report["runningOut"]} == {"gadget", "widget"}
        assert shop.gadget


async def test_money_counts_when_it_moves(api: Api, admin: str,
                                          customer_side: Customer) -> None:
    """A window holding only the refund (the order was paid before it) loses the money."""
    await make_history(api, admin, customer_side)
    url = api.settings.database_url
    (refunded_at,) = status_times(url, "REFUNDED")
    shipped_paid_at = max(status_times(url, "PAID"))  # the last payment came after the refund
    report = (await api.gql(REPORT, {"from": iso(refunded_at), "to": iso(shipped_paid_at),
                                     "granularity": "HOUR"}, token=admin))["salesReport"]
    assert (report["revenue"]["amount"], report["grossSales"]["amount"],
            report["refunds"]["amount"]) == (-5500, 0, 5500)
    assert (report["ordersPaid"], report["ordersRefunded"]) == (0, 1)
    assert report["averageOrderValue"] is None
    assert report["topProductsByUnits"] == []
