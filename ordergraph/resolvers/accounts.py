"""Account fields: me, register, login, roles, and the audit log."""

from __future__ import annotations

from ordergraph.domain.errors import NotFound, ValidationFailed
from ordergraph.domain.model import Role, User
from ordergraph.domain.read_ports import AuditRecord
from ordergraph.domain.services import auth
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.pagination import Connection, decode_cursor, page_size, parse_id

AUDIT_CURSOR = "audit"
ENTITY_TYPES = {"ORDER", "PRODUCT", "INVENTORY", "USER"}


async def me(ctx: RequestContext) -> User | None:
    return await ctx.viewer()


def _address_key(ctx: RequestContext, action: str) -> str:
    return f"{action}:ip:{ctx.client_address or 'unknown'}"


async def register(ctx: RequestContext, *, email: str, password: str,
                   name: str | None) -> auth.Session:
    s = ctx.deps
    if s.rate_limiter is not None:
        # Every registration counts against the address, successful or not.
        await s.rate_limiter.attempt([_address_key(ctx, "register")])
    return await auth.register(uow=s.uow(), passwords=s.passwords, tokens=s.tokens,
                               clock=s.clock, email=email, password=password, name=name)


async def login(ctx: RequestContext, *, email: str, password: str) -> auth.Session:
    """Counted against the address and the account before the password is checked, so
    concurrent guesses get no more tries than sequential ones."""
    s = ctx.deps
    address_key = _address_key(ctx, "login")
    account_key = f"login:email:{email.strip().lower()}"
    if s.rate_limiter is not None:
        await s.rate_limiter.attempt([address_key, account_key])
    # A failure (or a crash) stays counted.
    session = await auth.login(uow=s.uow(), passwords=s.passwords, tokens=s.tokens,
                               email=email, password=password)
    if s.rate_limiter is not None:
        # The account's owner is back: clear its count. The address only gets this one
        # attempt back, so logging in to one's own account cannot clear others' failures.
        await s.rate_limiter.reset([account_key])
        await s.rate_limiter.uncount([address_key])
    return session


async def set_user_role(ctx: RequestContext, *, user_id: str, role: Role) -> User:
    viewer = await ctx.require_admin()
    parsed = parse_id(user_id)
    if parsed is None:
        raise NotFound(f"User {user_id!r} not found.", field="userId")
    s = ctx.deps
    user = await auth.set_user_role(uow=s.uow(), clock=s.clock, viewer=viewer, user_id=parsed,
                                     role=role)
    # This process's live subscriptions re-check at once, even if the broadcast of the
    # change (which tells the other instances) is slow or lost.
    s.role_changes.heard(user.id)
    return user


async def audit_log(ctx: RequestContext, *, first: int | None, after: str | None,
                    entity_type: str | None, entity_id: str | None,
                    actor_id: str | None) -> Connection[AuditRecord]:
    await ctx.require_admin()
    if entity_type is not None:
        entity_type = entity_type.strip().upper()
        if entity_type not in ENTITY_TYPES:
            raise ValidationFailed(f"entityType is one of {', '.join(sorted(ENTITY_TYPES))}.",
                                   field="entityType")
    actor = None
    if actor_id is not None:
        actor = parse_id(actor_id)
        if actor is None:
            raise ValidationFailed("actorId is not a user id.", field="actorId")
    page = await ctx.deps.reader.audit_page(
        first=page_size(first, 50), after_id=decode_cursor(AUDIT_CURSOR, after),
        entity_type=entity_type, entity_id=entity_id, actor_id=actor)
    return Connection.from_page(AUDIT_CURSOR, page)


async def actor_of(ctx: RequestContext, record: AuditRecord) -> User | None:
    """Who made a change: admins see anyone, everyone else only themselves (staff who
    touched a customer's order are a role to the customer, not a person: `actor_role_of`)."""
    actor_id = record.actor.user_id
    if actor_id is None:
        return None
    viewer = await ctx.viewer()
    if viewer is None or not (viewer.is_admin or viewer.id == actor_id):
        return None
    return await ctx.loaders.user.load(actor_id)


async def actor_role_of(ctx: RequestContext, record: AuditRecord) -> Role | None:
    """The role a user made a change in."""
    actor_id = record.actor.user_id
    if actor_id is None:
        return None
    viewer = await ctx.viewer()
    if viewer is not None and not viewer.is_admin and viewer.id != actor_id:
        # A customer sees other users only in their own orders' history, where nobody but
        # staff can act; their role now might tell less (an admin demoted since).
        return Role.ADMIN
    actor = await ctx.loaders.user.load(actor_id)
    return actor.role if actor else None
