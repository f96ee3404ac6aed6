"""Shipping: the address an order ships to, and what shipping costs.

An order keeps its address and its shipping cost as they were at checkout (a snapshot):
changing the customer's default address or the shop's rates later changes no order.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass

from ordergraph.domain.errors import ValidationFailed

# ISO 3166-1 alpha-2: every officially assigned code (249), as tzdata's iso3166.tab lists them.
COUNTRY_CODES = frozenset([
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW",
    "AX", "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN",
    "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG",
    "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ",
    "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI",
    "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL",
    "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR",
    "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA",
    "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME",
    "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU",
    "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP",
    "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR",
    "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD",
    "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
    "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE",
    "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
])

# (field, GraphQL name, longest accepted, required)
_FIELDS = (
    ("name", "name", 100, True),
    ("line1", "line1", 200, True),
    ("line2", "line2", 200, False),
    ("city", "city", 100, True),
    ("postal_code", "postalCode", 20, True),
    ("region", "region", 100, False),
)


# Joiners that some scripts need (Persian, Indic names); other format characters (bidi
# overrides) and control characters have no place on a parcel label.
_JOINERS = frozenset("\u200c\u200d")


def _unprintable(char: str) -> bool:
    return unicodedata.category(char).startswith("C") and char not in _JOINERS


def _clean(text: str) -> str:
    """Trimmed, inner runs of whitespace made one space, Unicode in NFC form."""
    return " ".join(unicodedata.normalize("NFC", text).split())


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address. Build it with `Address.parse`, which validates and normalises."""

    name: str
    line1: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2, upper case
    line2: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, *, name: str, line1: str, line2: str | None, city: str, postal_code: str,
              region: str | None, country: str, field_prefix: str) -> Address:
        """The address, normalised; VALIDATION_FAILED naming the field at fault, e.g.
        `shippingAddress.country`."""
        given = {"name": name, "line1": line1, "line2": line2, "city": city,
                 "postal_code": postal_code, "region": region}
        values: dict[str, str | None] = {}
        for attribute, graphql_name, longest, required in _FIELDS:
            raw = given[attribute]
            value = _clean(raw) if raw is not None else ""
            field = f"{field_prefix}.{graphql_name}"
            if any(_unprintable(char) for char in value):
                raise ValidationFailed("Use letters, digits and punctuation only.", field=field)
            if not value:
                if required:
                    raise ValidationFailed("This is required.", field=field)
                values[attribute] = None
                continue
            if len(value) > longest:
                raise ValidationFailed(f"At most {longest} characters.", field=field)
            values[attribute] = value
        code = _clean(country).upper()
        if code not in COUNTRY_CODES:
            raise ValidationFailed("Country must be an ISO 3166-1 alpha-2 code, e.g. US or DE.",
                                   field=f"{field_prefix}.country")
        return cls(country=code, **values)  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_snapshot(cls, data: dict[str, str | None]) -> Address:
        return cls(**data)  # type: ignore[arg-type]

    def fingerprint(self) -> str:
        """Equal addresses give equal digests (they are normalised when parsed)."""
        text = json.dumps(self.snapshot(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ShippingRates:
    """A flat rate per shipped order, free from a subtotal on (None: never free by
    subtotal); `required`: every checkout must give an address."""

    flat_cents: int = 0
    free_over_cents: int | None = None
    required: bool = False

    def cost_cents(self, subtotal_cents: int) -> int:
        """What shipping an order of `subtotal_cents` costs: free at or over the threshold."""
        if self.free_over_cents is not None and subtotal_cents >= self.free_over_cents:
            return 0
        return self.flat_cents
