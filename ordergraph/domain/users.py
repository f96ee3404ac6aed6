"""Users: accounts, their email and password rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ordergraph.domain import events as ev
from ordergraph.domain.actors import Actor, Role
from ordergraph.domain.errors import ValidationFailed

# ---- users ------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed email; VALIDATION_FAILED if it does not look like one."""
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValidationFailed("Enter a valid email address.", field="email")
    return email


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            field="password",
        )
    if not password.strip():  # eight spaces have the length of a password, not its secret
        raise ValidationFailed("Password must not be only spaces.", field="password")


@dataclass
class User:
    id: int
    email: str
    name: str | None
    role: Role
    password_hash: str
    created_at: datetime
    # Set by a password reset: tokens issued before it no longer authenticate.
    password_changed_at: datetime | None = None
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def change_role(self, role: Role, *, actor: Actor, at: datetime) -> None:
        if role is self.role:
            return
        previous, self.role = self.role, role
        self.events.append(
            ev.UserRoleChanged(at=at, actor=actor, user_id=self.id, before=previous.value,
                               after=role.value)
        )
