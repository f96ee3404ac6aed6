"""JWT access tokens: HS256, carrying only the user id and the times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from ordergraph.domain.auth_ports import IssuedToken
from ordergraph.domain.errors import Unauthenticated
from ordergraph.domain.ports import Clock

ALGORITHM = "HS256"


class JwtTokenIssuer:
    def __init__(self, secret: str, *, lifetime: timedelta, clock: Clock) -> None:
        self._secret = secret
        self._lifetime = lifetime
        self._clock = clock

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
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM],  # pinned: no alg=none, no RS/HS mixups
                options={"require": ["sub", "iat", "exp"]},
            )
            return int(claims["sub"])
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("Your session has expired; log in again.") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("Invalid token.") from None

    def expires_at(self, token: str) -> datetime | None:
        """The token's expiry, for ending live subscriptions on time."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM])
        except jwt.InvalidTokenError:
            return None
        return datetime.fromtimestamp(claims["exp"], tz=UTC)

    def issued_at(self, token: str) -> datetime | None:
        """When the token was issued (a password reset revokes those issued before)."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM])
        except jwt.InvalidTokenError:
            return None
        return datetime.fromtimestamp(float(claims["iat"]), tz=UTC)
