"""Who may call a field. Failures are top-level errors with UNAUTHENTICATED or FORBIDDEN."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from ordergraph.schema.types import Info


class IsAuthenticated(BasePermission):
    message = "You must be logged in."
    error_extensions = {"code": "UNAUTHENTICATED"}

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # An invalid or expired token raises UNAUTHENTICATED with its own message.
        return await info.context.viewer() is not None


class HasToken(BasePermission):
    """A valid token, its account left to the resolver's use case to read (the checkout reads
    it in its own first statement: one read fewer per checkout)."""

    message = IsAuthenticated.message
    error_extensions = IsAuthenticated.error_extensions

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # An invalid or expired token raises UNAUTHENTICATED with its own message.
        return info.context.token_user_id() is not None


class IsAdmin(BasePermission):
    message = "Only admins may do this."
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await info.context.require_user()  # anonymous: UNAUTHENTICATED, not FORBIDDEN
        return await info.context.is_admin()
