"""argon2id password hashing, run in worker threads (a verify costs 17-90 ms of CPU)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
OWASP_MINIMUM = {"memory_cost": 19 * 1024, "time_cost": 2, "parallelism": 1}


class Argon2PasswordHasher:
    def __init__(self, *, memory_cost: int = OWASP_MINIMUM["memory_cost"],
                 time_cost: int = OWASP_MINIMUM["time_cost"],
                 parallelism: int = OWASP_MINIMUM["parallelism"]) -> None:
        self._hasher = PasswordHasher(memory_cost=memory_cost, time_cost=time_cost,
                                      parallelism=parallelism)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than ours."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
