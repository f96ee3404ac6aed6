"""JWT access tokens: HS256, carrying only the user id and the times."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta

import jwt

from ordergraph.domain.auth_ports import IssuedToken
from ordergraph.domain.errors import Unauthenticated
from ordergraph.domain.ports import Clock

ALGORITHM = "HS256"
# Tokens whose signature was checked, with their claims: every request of a signed-in client
# shows the same token again, and decoding it costs more than the rest of the request's
# authentication (bench/RESULTS.md). Only tokens signed with our secret get in (a forged or
# malformed one raises and is not kept); expiry is checked on every use.
VERIFIED_TOKENS = 4096


class JwtTokenIssuer:
    def __init__(self, secret: str, *, lifetime: timedelta, clock: Clock) -> None:
        self._secret = secret
        self._lifetime = lifetime
        self._clock = clock
        self._claims = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._decode)

    def issue(self, user_id: int) -> IssuedToken:
        now = self._clock.now()
        expires_at = now + self._lifetime
        # The role is not in the token: it is read from the database on every request, so a
        # demoted admin loses admin rights at once.
        # iat in milliseconds: a password reset revokes the tokens issued before it, and the
        # one issued right after it must not look older (whole seconds would).
        claims = {"sub": str(user_id), "iat": now.timestamp() * 1000 // 1 / 1000,
                  "exp": int(expires_at.timestamp())}
        return IssuedToken(token=jwt.encode(claims, self._secret, algorithm=ALGORITHM),
                           expires_at=expires_at.replace(microsecond=0))

    def verify(self, token: str) -> int:
        try:
            user_id, _issued, expires = self._claims(token)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("Invalid token.") from None
        if expires <= time.time():
            raise Unauthenticated("Your session has expired; log in again.")
        return user_id

    def expires_at(self, token: str) -> datetime | None:
        """The token's expiry, for ending live subscriptions on time (None: not valid)."""
        claims = self._valid_claims(token)
        return datetime.fromtimestamp(claims[2], tz=UTC) if claims else None

    def issued_at(self, token: str) -> datetime | None:
        """When the token was issued (a password reset revokes those issued before)."""
        claims = self._valid_claims(token)
        return datetime.fromtimestamp(claims[1], tz=UTC) if claims else None

    def _valid_claims(self, token: str) -> tuple[int, float, int] | None:
        try:
            claims = self._claims(token)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return None
        return claims if claims[2] > time.time() else None

    def _decode(self, token: str) -> tuple[int, float, int]:
        """(user id, issued at, expires at) of a token signed with our secret; raises for any
        other. Expiry is left to the callers: the answer is kept (self._claims)."""
        claims = jwt.decode(
            token, self._secret, algorithms=[ALGORITHM],  # pinned: no alg=none, no RS/HS mixups
            options={"require": ["sub", "iat", "exp"], "verify_exp": False})
        return int(claims["sub"]), float(claims["iat"]), int(claims["exp"])
