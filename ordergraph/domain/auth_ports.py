"""What the account use cases (domain/services/auth.py) need besides the database: password
hashing, session tokens, and the throttle that counts login and registration attempts.
`adapters/` implement them (passwords.py, tokens.py, ratelimit.py); the other use cases'
ports are in `ports.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...
    def needs_rehash(self, password_hash: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


class TokenIssuer(Protocol):
    def issue(self, user_id: int) -> IssuedToken: ...
    def verify(self, token: str) -> int:
        """The user id the token was issued to; raises Unauthenticated if it is not valid."""
        ...
    def expires_at(self, token: str) -> datetime | None:
        """When a valid token stops being valid (to end live subscriptions on time)."""
        ...
    def issued_at(self, token: str) -> datetime | None:
        """When a valid token was issued (a password reset revokes those issued before)."""
        ...


class RateLimiter(Protocol):
    """Counts attempts per key (an address, an account) and blocks keys that fail too often."""

    async def attempt(self, keys: Sequence[str]) -> None:
        """Count an attempt on every key, atomically with the check: RateLimited (and nothing
        counted) while any key is blocked. Call it before the attempt is made."""
        ...
    async def uncount(self, keys: Sequence[str]) -> None:
        """Take back the attempt just counted on these keys (it succeeded)."""
        ...
    async def reset(self, keys: Sequence[str]) -> None:
        """Forget everything counted on these keys."""
        ...
