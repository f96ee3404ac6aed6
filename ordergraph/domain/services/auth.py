"""Accounts: register, log in, reset a password, resolve a token to its user, roles."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ordergraph.domain import events as ev
from ordergraph.domain.auth_ports import IssuedToken, PasswordHasher, TokenIssuer
from ordergraph.domain.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from ordergraph.domain.model import (
    SYSTEM,
    Actor,
    Role,
    User,
    check_password_rules,
    normalise_email,
)
from ordergraph.domain.ports import Clock, UnitOfWork
from ordergraph.domain.read_ports import ReadStore
from ordergraph.domain.services.transaction import retrying

MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    expires_at: datetime
    user: User


def _issue(tokens: TokenIssuer, user: User) -> Session:
    issued: IssuedToken = tokens.issue(user.id)
    return Session(token=issued.token, expires_at=issued.expires_at, user=user)


async def register(*, uow: UnitOfWork, passwords: PasswordHasher, tokens: TokenIssuer,
                   clock: Clock, email: str, password: str, name: str | None) -> Session:
    """A new CUSTOMER account, logged in. Never takes a role; EMAIL_TAKEN if it exists."""
    user = await create_user(uow=uow, passwords=passwords, clock=clock, email=email,
                             password=password, name=name, role=Role.CUSTOMER, actor=None)
    return _issue(tokens, user)


async def create_user(*, uow: UnitOfWork, passwords: PasswordHasher, clock: Clock, email: str,
                      password: str, name: str | None, role: Role, actor: Actor | None) -> User:
    """Validate and store a user with an argon2id hash (computed off the event loop)."""
    email = normalise_email(email)
    check_password_rules(password)
    if name is not None:
        name = name.strip() or None
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise ValidationFailed(f"Name has at most {MAX_NAME_LENGTH} characters.",
                                   field="name")
    password_hash = await passwords.hash(password)

    async for attempt in retrying(uow):
        async with attempt:
            if await uow.users.get_by_email(email) is not None:
                raise EmailTaken()
            now = clock.now()
            user = User(id=0, email=email, name=name, role=role, password_hash=password_hash,
                        created_at=now)
            # A racing registration of the same email fails the unique index; the retry
            # then finds the row and says EMAIL_TAKEN.
            await uow.users.add(user)
            user.events.append(ev.UserRegistered(at=now, actor=actor or Actor.user(user.id),
                                                 user_id=user.id, email=email,
                                                 role=role.value))
            await uow.commit()
    return user


# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_PASSWORD = "not-a-real-password-but-long-enough"  # noqa: S105


async def login(*, uow: UnitOfWork, passwords: PasswordHasher, tokens: TokenIssuer,
                email: str, password: str) -> Session:
    """A token for the account; INVALID_CREDENTIALS whether the email or password is wrong."""
    try:
        email = normalise_email(email)
    except ValidationFailed:
        raise InvalidCredentials() from None

    async for attempt in retrying(uow):
        async with attempt:
            user = await uow.users.get_by_email(email)
    if user is None:
        await passwords.verify(await _dummy_hash(passwords), password)
        raise InvalidCredentials()
    if not await passwords.verify(user.password_hash, password):
        raise InvalidCredentials()
    if passwords.needs_rehash(user.password_hash):
        await _rehash(uow, passwords, user.id, password)
    return _issue(tokens, user)


_dummy_hashes: dict[int, str] = {}


async def _dummy_hash(passwords: PasswordHasher) -> str:
    key = id(passwords)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = await passwords.hash(_DUMMY_PASSWORD)
    return _dummy_hashes[key]


async def _rehash(uow: UnitOfWork, passwords: PasswordHasher, user_id: int,
                  password: str) -> None:
    """The hashing parameters changed since this hash was made: store a fresh one."""
    new_hash = await passwords.hash(password)

    async for attempt in retrying(uow):
        async with attempt:
            user = await uow.users.get(user_id, for_update=True)
            if user is not None:
                user.password_hash = new_hash
                await uow.users.save(user)
                await uow.commit()


async def user_for_token(*, reader: ReadStore, tokens: TokenIssuer, token: str) -> User:
    """The token's user, read from the database now (so a role change applies at once, and
    a password reset revokes every token issued before it)."""
    user_id = tokens.verify(token)
    user = (await reader.users_by_ids([user_id])).get(user_id)
    return current_account(user, issued_at=lambda: tokens.issued_at(token))


def current_account(user: User | None, *, issued_at: Callable[[], datetime | None]) -> User:
    """The user a verified token names, if the token still stands for them: the account
    exists and its password was not changed after the token was issued (`issued_at`, asked
    only then). UNAUTHENTICATED otherwise."""
    if user is None:
        raise Unauthenticated("This account no longer exists.")
    if user.password_changed_at is not None:
        issued = issued_at()
        if issued is None or issued < user.password_changed_at:
            raise Unauthenticated("Your password was changed; log in again.")
    return user


# ---- password reset ---------------------------------------------------------------------

RESET_TOKEN_LIFETIME = timedelta(minutes=30)
_MAX_TOKEN_LENGTH = 200


def reset_token_hash(token: str) -> str:
    """What the database keeps of a reset token (the token itself is in the email only)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _whole_milliseconds(at: datetime) -> datetime:
    # Tokens carry their issue time in milliseconds: a token issued right after the reset
    # must not look older than it.
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


async def request_password_reset(*, uow: UnitOfWork, clock: Clock, email: str,
                                 requested_from: str | None = None) -> None:
    """Email a single-use reset link if the account exists; nothing otherwise. The caller
    answers the same either way (no account oracle)."""
    try:
        email = normalise_email(email)
    except ValidationFailed:
        return
    token = secrets.token_urlsafe(32)

    async for attempt in retrying(uow):
        async with attempt:
            user = await uow.users.get_by_email(email)
            if user is not None:
                now = clock.now()
                expires_at = now + RESET_TOKEN_LIFETIME
                await uow.password_resets.add(user_id=user.id,
                                              token_hash=reset_token_hash(token),
                                              created_at=now, expires_at=expires_at)
                # The unit of work turns this into the email, in this transaction. Anyone
                # may ask (the link goes to the account's own address): not the user's act.
                user.events.append(ev.PasswordResetRequested(
                    at=now, actor=SYSTEM, user_id=user.id, token=token,
                    expires_at=expires_at, requested_from=requested_from))
                await uow.commit()


async def reset_password(*, uow: UnitOfWork, passwords: PasswordHasher, tokens: TokenIssuer,
                         clock: Clock, token: str, new_password: str) -> Session:
    """Set the password from a reset link and log in; sessions issued before stop working.
    INVALID_TOKEN for an unknown, used or expired token; of two racing calls one wins."""
    try:
        check_password_rules(new_password)
    except ValidationFailed as error:
        raise ValidationFailed(error.message, field="newPassword") from None
    token = token.strip()
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidToken()
    token_hash = reset_token_hash(token)
    # Refused before the costly hashing: guessed tokens cost the server next to nothing.
    async for attempt in retrying(uow):
        async with attempt:
            usable = await uow.password_resets.usable(token_hash, now=clock.now())
    if not usable:
        raise InvalidToken()
    new_hash = await passwords.hash(new_password)

    async for attempt in retrying(uow):
        async with attempt:
            now = clock.now()
            user_id = await uow.password_resets.use(token_hash, now=now)
            if user_id is None:
                raise InvalidToken()
            user = await uow.users.get(user_id, for_update=True)
            if user is None:
                raise InvalidToken()
            user.password_hash = new_hash
            user.password_changed_at = _whole_milliseconds(now)
            await uow.password_resets.revoke_all(user.id, now=now)
            user.events.append(ev.PasswordReset(at=now, actor=Actor.user(user.id),
                                                user_id=user.id))
            await uow.users.save(user)
            await uow.commit()
    return _issue(tokens, user)


async def set_user_role(*, uow: UnitOfWork, clock: Clock, viewer: User, user_id: int,
                        role: Role) -> User:
    """Admins change a user's role; not their own (an admin cannot lock everyone out)."""
    if user_id == viewer.id:
        raise ValidationFailed("You cannot change your own role.", field="userId")

    async for attempt in retrying(uow):
        async with attempt:
            user = await uow.users.get(user_id, for_update=True)
            if user is None:
                raise NotFound(f"User {user_id} not found.", field="userId")
            user.change_role(role, actor=Actor.user(viewer.id), at=clock.now())
            await uow.users.save(user)
            await uow.commit()
    return user


async def set_role_by_email(*, uow: UnitOfWork, clock: Clock, email: str, role: Role,
                            actor: Actor) -> bool:
    """Give an existing account a role (the `create-admin` command); False if none exists."""
    email = normalise_email(email)

    async for attempt in retrying(uow):
        async with attempt:
            user = await uow.users.get_by_email(email)
            if user is not None:
                user.change_role(role, actor=actor, at=clock.now())
                await uow.users.save(user)
                await uow.commit()
    return user is not None
