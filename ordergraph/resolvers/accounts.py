"""Account fields: me, register, login, roles, and the audit log."""

from __future__ import annotations

from ordergraph.domain.errors import InvalidCredentials, NotFound, ValidationFailed
from ordergraph.domain.model import Role, User
from ordergraph.domain.ports import AuditRecord
from ordergraph.domain.services import auth
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.pagination import Connection, decode_cursor, page_size, parse_id

AUDIT_CURSOR = "audit"
ENTITY_TYPES = {"ORDER", "PRODUCT", "INVENTORY", "USER"}


async def me(ctx: RequestContext) -> User | None:
    return await ctx.viewer()


def _throttle_keys(ctx: RequestContext, action: str, email: str | None) -> list[str]:
    keys = [f"{action}:ip:{ctx.client_address or 'unknown'}"]
    if email:
        keys.append(f"{action}:email:{email.strip().lower()}")
    return keys


async def register(ctx: RequestContext, *, email: str, password: str,
                   name: str | None) -> auth.Session:
    s = ctx.services
    keys = _throttle_keys(ctx, "register", None)
    if s.rate_limiter is not None:
        await s.rate_limiter.check(keys)
        # Every registration counts against the address, successful or not.
        await s.rate_limiter.failed(keys)
    return await auth.register(s.uow(), s.passwords, s.tokens, s.clock, email=email,
                               password=password, name=name)


async def login(ctx: RequestContext, *, email: str, password: str) -> auth.Session:
    s = ctx.services
    keys = _throttle_keys(ctx, "login", email)
    if s.rate_limiter is not None:
        await s.rate_limiter.check(keys)
    try:
        session = await auth.login(s.uow(), s.passwords, s.tokens, email=email,
                                   password=password)
    except InvalidCredentials:
        if s.rate_limiter is not None:
            await s.rate_limiter.failed(keys)
        raise
    if s.rate_limiter is not None:
        await s.rate_limiter.succeeded(keys)
    return session


async def set_user_role(ctx: RequestContext, *, user_id: str, role: Role) -> User:
    viewer = await ctx.require_admin()
    parsed = parse_id(user_id)
    if parsed is None:
        raise NotFound(f"User {user_id!r} not found.", field="userId")
    s = ctx.services
    return await auth.set_user_role(s.uow(), s.clock, viewer=viewer, user_id=parsed, role=role)


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
    page = await ctx.services.reader.audit_page(
        first=page_size(first, 50), after_id=decode_cursor(AUDIT_CURSOR, after),
        entity_type=entity_type, entity_id=entity_id, actor_id=actor)
    return Connection.from_page(AUDIT_CURSOR, page)


async def actor_of(ctx: RequestContext, record: AuditRecord) -> User | None:
    if record.actor.user_id is None:
        return None
    return await ctx.loaders.user.load(record.actor.user_id)
