"""Access tokens: a verified token's claims are kept, never its validity past its expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from ordergraph.adapters import tokens as tokens_module
from ordergraph.adapters.tokens import JwtTokenIssuer
from ordergraph.domain.errors import Unauthenticated

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def issuer() -> JwtTokenIssuer:
    return JwtTokenIssuer(SECRET, lifetime=timedelta(minutes=10),
                          clock=FixedClock(datetime.now(UTC)))


def test_a_kept_token_is_refused_once_it_has_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = issuer()
    token = tokens.issue(7).token
    assert tokens.verify(token) == 7
    assert tokens.expires_at(token) is not None
    later = tokens_module.time.time() + 11 * 60
    monkeypatch.setattr(tokens_module.time, "time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)
    assert tokens.expires_at(token) is None
    assert tokens.issued_at(token) is None


def test_a_token_signed_with_another_secret_is_refused_every_time() -> None:
    tokens = issuer()
    now = int(datetime.now(UTC).timestamp())
    forged = jwt.encode({"sub": "7", "iat": now, "exp": now + 600}, "another-secret-" * 3,
                        algorithm="HS256")
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="Invalid token"):
            tokens.verify(forged)
    assert tokens.issued_at(forged) is None


def test_issued_at_keeps_milliseconds() -> None:
    clock = FixedClock(datetime(2026, 12, 3, 12, 0, 0, 123000, tzinfo=UTC))
    tokens = JwtTokenIssuer(SECRET, lifetime=timedelta(days=36500), clock=clock)
    token = tokens.issue(3).token
    assert tokens.verify(token) == 3
    assert tokens.issued_at(token) == clock.at
