"""Who does things: roles and actors (a user, the system, the payment provider)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# ---- actors and roles -------------------------------------------------------------------


class Role(enum.Enum):
    CUSTOMER = "CUSTOMER"
    ADMIN = "ADMIN"


class ActorKind(enum.Enum):
    USER = "USER"
    SYSTEM = "SYSTEM"
    PAYMENT_PROVIDER = "PAYMENT_PROVIDER"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user, the system (sweeper), or the payment provider (webhook)."""

    kind: ActorKind
    user_id: int | None = None

    @classmethod
    def user(cls, user_id: int) -> Actor:
        return cls(ActorKind.USER, user_id)


SYSTEM = Actor(ActorKind.SYSTEM)
PAYMENT_PROVIDER = Actor(ActorKind.PAYMENT_PROVIDER)
