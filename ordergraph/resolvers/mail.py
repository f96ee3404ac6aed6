"""Password reset and the local mailbox (local mail mode's sink, for admins)."""

from __future__ import annotations

from ordergraph.domain.errors import RateLimited
from ordergraph.domain.ports import ReceivedMail
from ordergraph.domain.services import auth
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.pagination import page_size


async def request_password_reset(ctx: RequestContext, *, email: str) -> bool:
    """Always True, whether the account exists, the address is malformed or the request
    is throttled (per address and per account): nothing here tells an account apart."""
    s = ctx.services
    if s.rate_limiter is not None:
        try:
            await s.rate_limiter.attempt([f"reset:ip:{ctx.client_address or 'unknown'}",
                                          f"reset:email:{email.strip().lower()[:254]}"])
        except RateLimited:
            return True  # throttled: the same answer, and no email
    await auth.request_password_reset(s.uow(), s.clock, email=email,
                                      requested_from=ctx.client_address)
    return True


async def reset_password(ctx: RequestContext, *, token: str,
                         new_password: str) -> auth.Session:
    s = ctx.services
    return await auth.reset_password(s.uow(), s.passwords, s.tokens, s.clock, token=token,
                                     new_password=new_password)


async def local_mailbox(ctx: RequestContext, *, first: int | None) -> list[ReceivedMail] | None:
    """What the local SMTP sink received, newest first; None unless in local mail mode."""
    await ctx.require_admin()
    mailbox = ctx.services.local_mailbox
    if mailbox is None:
        return None
    return mailbox.messages(limit=page_size(first, 50))
