"""Reading one setting's text: durations, database URLs, proxy lists, isolation levels, and
the error that names a malformed one. `settings.py` (the Settings class) calls these.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS: dict[str | None, float] = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
                                   None: 1}
# What platforms hand out (Heroku, Render, Fly, RDS consoles) names no driver; SQLAlchemy would
# pick psycopg2, which is not installed.
_BARE_POSTGRES_SCHEMES = ("postgres", "postgresql")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and why, in one line."""


def parse_duration(text: str, *, name: str = "duration") -> timedelta:
    """"15m", "30s", "2h", "1d", "500ms", or a number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise SettingsError(f"{name}: {text!r} is not a duration like 15m, 30s, 1h or 1d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def normalise_database_url(url: str) -> str:
    """`postgres://` and `postgresql://` become `postgresql+psycopg://`; the rest of the URL
    (credentials, host, query such as `?sslmode=require`) is kept as it is."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in _BARE_POSTGRES_SCHEMES:
        return f"postgresql+psycopg://{rest}"
    return url


def trusted_proxies(text: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks, or `*` (every peer: see the README)."""
    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    if entries == ("*",):
        return entries
    for entry in entries:
        try:
            ipaddress.ip_network(entry)  # an address is a network of one
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or a CIDR network like "
                "10.0.0.0/8 (or use * alone)") from None
    if not entries:
        raise SettingsError("TRUSTED_PROXIES: empty; list at least one address")
    return entries


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False


def isolation_level(text: str) -> str:
    level = text.strip().upper().replace("_", " ").replace("-", " ")
    if level not in {"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}:
        raise SettingsError(
            f"DATABASE_ISOLATION_LEVEL: {text!r} is not READ COMMITTED, REPEATABLE READ or "
            "SERIALIZABLE")
    return level
