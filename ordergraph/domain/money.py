"""Money: amounts in a currency's minor units, and the limits every amount fits in."""

from __future__ import annotations

from dataclasses import dataclass

# GraphQL's Int is a signed 32-bit integer: every amount and count we expose must fit in it.
MAX_GRAPHQL_INT = 2**31 - 1
MAX_PRICE_CENTS = 99_999_999
MAX_STOCK_LEVEL = 1_000_000_000


# ---- money ------------------------------------------------------------------------------

# Minor units per currency (ISO 4217 exponent); two unless listed.
_CURRENCY_EXPONENT = {"jpy": 0, "krw": 0, "vnd": 0, "clp": 0, "isk": 0, "kwd": 3, "bhd": 3}
_CURRENCY_SYMBOL = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


@dataclass(frozen=True, slots=True)
class Money:
    """An integer amount of a currency's minor units (cents). Never a float."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def __mul__(self, times: int) -> Money:
        return Money(self.amount * times, self.currency)

    def formatted(self) -> str:
        """Human-readable amount, e.g. "$149.99" or "1,500 JPY"."""
        exponent = _CURRENCY_EXPONENT.get(self.currency.lower(), 2)
        sign = "-" if self.amount < 0 else ""
        units, minor = divmod(abs(self.amount), 10**exponent)
        number = f"{units:,}" + (f".{minor:0{exponent}d}" if exponent else "")
        symbol = _CURRENCY_SYMBOL.get(self.currency.lower())
        return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {self.currency.upper()}"
