"""Shipping values: addresses (validated and normalised), rates, settings, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ordergraph.domain.errors import ValidationFailed
from ordergraph.domain.model import Money, Order, OrderLine, OrderStatus, order_from_snapshot
from ordergraph.domain.shipping import COUNTRY_CODES, Address, ShippingRates
from ordergraph.settings import Settings, SettingsError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PARTS = {"name": "Ada Lovelace", "line1": "1 Main St", "line2": None, "city": "London",
         "postal_code": "N1 9GU", "region": None, "country": "GB"}


def parse(**changes: object) -> Address:
    return Address.parse(**{**PARTS, **changes}, field_prefix="shippingAddress")  # type: ignore[arg-type]


def test_the_country_list_is_iso_3166_alpha_2() -> None:
    assert len(COUNTRY_CODES) == 249
    assert {"US", "DE", "GB", "JP", "AX", "SS"} <= COUNTRY_CODES
    assert not {"UK", "EU", "XK", "USA", "ZZ"} & COUNTRY_CODES


def test_parts_are_trimmed_collapsed_and_the_country_upper_cased() -> None:
    address = parse(name="  Ada \t Lovelace ", line2="   ", region=" Greater\nLondon ",
                    country=" gb ", city="London")
    assert address == Address(name="Ada Lovelace", line1="1 Main St", city="London",
                              postal_code="N1 9GU", country="GB", line2=None,
                              region="Greater London")
    # Equal addresses, however typed, have one fingerprint; another address another one.
    assert parse().fingerprint() == parse(country="gb", name=" Ada Lovelace").fingerprint()
    assert parse().fingerprint() != parse(city="Paris").fingerprint()


def test_scripts_that_need_joiners_are_accepted() -> None:
    assert parse(name="\u0645\u06cc\u200c\u0631\u0648\u062f").name == \
        "\u0645\u06cc\u200c\u0631\u0648\u062f"


@pytest.mark.parametrize(("changes", "field"), [
    ({"country": "Germany"}, "shippingAddress.country"),
    ({"country": "XK"}, "shippingAddress.country"),
    ({"name": ""}, "shippingAddress.name"),
    ({"postal_code": " "}, "shippingAddress.postalCode"),
    ({"line1": "a" * 201}, "shippingAddress.line1"),
    ({"region": "Tab\x1bEscape"}, "shippingAddress.region"),
    ({"name": "Ada \u202eecalevol"}, "shippingAddress.name"),  # a bidi override
])
def test_a_bad_part_is_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse(**changes)
    assert refused.value.field == field


@pytest.mark.parametrize(("subtotal", "cost"), [(0, 499), (4999, 499), (5000, 0), (9000, 0)])
def test_the_rate_is_free_from_the_threshold_on(subtotal: int, cost: int) -> None:
    assert ShippingRates(flat_cents=499, free_over_cents=5000).cost_cents(subtotal) == cost
    assert ShippingRates(flat_cents=499).cost_cents(subtotal) == 499  # never free
    assert ShippingRates().cost_cents(subtotal) == 0  # the default: free


def test_shipping_settings_are_read_and_checked() -> None:
    settings = Settings._from_values({"SHIPPING_FLAT_CENTS": "499",
                                      "FREE_SHIPPING_OVER_CENTS": "5000",
                                      "SHIPPING_REQUIRED": "true"})
    assert (settings.shipping_flat_cents, settings.free_shipping_over_cents,
            settings.shipping_required) == (499, 5000, True)
    defaults = Settings._from_values({})
    assert (defaults.shipping_flat_cents, defaults.free_shipping_over_cents,
            defaults.shipping_required) == (0, None, False)
    for bad in ({"SHIPPING_FLAT_CENTS": "-1"}, {"FREE_SHIPPING_OVER_CENTS": "-5"}):
        with pytest.raises(SettingsError, match="SHIPPING"):
            Settings._from_values({**bad, "JWT_SECRET": "x" * 40}).check()
    with pytest.raises(SettingsError, match="SHIPPING_FLAT_CENTS"):
        Settings._from_values({"SHIPPING_FLAT_CENTS": "4.99"})


def test_an_order_snapshot_keeps_its_address_and_shipping() -> None:
    order = Order(id=7, customer_id=1, status=OrderStatus.CREATED,
                  lines=[OrderLine(1, 2, Money(1500, "usd"))], currency="usd", version=1,
                  created_at=NOW, updated_at=NOW, shipping_address=parse(), shipping_cents=499)
    assert (order.subtotal, order.shipping, order.total) == \
        (Money(3000, "usd"), Money(499, "usd"), Money(3499, "usd"))
    again = order_from_snapshot(order.snapshot())
    assert (again.shipping_address, again.total) == (order.shipping_address, order.total)

    # An event from before shipping has neither: no address, shipping 0.
    old = order.snapshot()
    for key in ("shipping", "subtotal", "shipping_address"):
        del old[key]
    before = order_from_snapshot(old)
    assert (before.shipping_address, before.shipping, before.total) == \
        (None, Money(0, "usd"), Money(3000, "usd"))
