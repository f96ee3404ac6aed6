"""What a resolver gets, per request: the app's dependencies, the viewer and the loaders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ordergraph.domain.errors import Forbidden, Unauthenticated
from ordergraph.domain.model import User
from ordergraph.domain.services.auth import user_for_token
from ordergraph.resolvers.deps import Deps, Loaders, PaymentSettings

__all__ = ["Deps", "Loaders", "PaymentSettings", "RequestContext"]


@dataclass
class RequestContext:
    """One per HTTP request or WebSocket connection (Strawberry's `info.context`)."""

    deps: Deps
    request_id: str
    authorization: str | None = None  # the "Bearer <jwt>" header or connection_init value
    client_address: str | None = None
    connection_params: dict[str, Any] | None = None  # set by Strawberry on connection_init
    request: Any = None
    response: Any = None
    live_subscriptions: int = 0  # open on this connection (SubscriptionSlots counts them)
    _loaders: Loaders | None = None
    _shared: dict[str, Any] | None = None
    _viewer: User | None = None
    _viewer_loaded: bool = False

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            if self._shared is not None:  # a live event's: made once, for all its subscribers
                if "loaders" not in self._shared:
                    self._shared["loaders"] = self.deps.make_loaders()
                self._loaders = self._shared["loaders"]
            else:
                self._loaders = self.deps.make_loaders()
                if self._viewer is not None:  # read already: no second query for it
                    self._loaders.user.prime_many({self._viewer.id: self._viewer})
        return self._loaders

    def use_shared_loaders(self, cache: dict[str, Any]) -> None:
        """Resolve a live event with loaders shared by all its subscribers (one query per
        kind for the whole fan-out, however many clients listen), made only if a field
        needs one."""
        self._shared = cache
        self._loaders = None

    @property
    def token(self) -> str | None:
        header = self.authorization
        if self.connection_params is not None:
            header = self.connection_params.get("authorization") or \
                self.connection_params.get("Authorization") or header
        if not header or not isinstance(header, str):
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send the token as 'Authorization: Bearer <token>'.")
        return token.strip()

    async def viewer(self) -> User | None:
        """The logged-in user (role fresh from the database), None if anonymous.

        A token that is present but invalid or expired is UNAUTHENTICATED, never anonymous.
        """
        if not self._viewer_loaded:
            token = self.token
            self._viewer = None if token is None else \
                await user_for_token(reader=self.deps.reader, tokens=self.deps.tokens, token=token)
            self._viewer_loaded = True
            if self._viewer is not None and self._loaders is not None and self._shared is None:
                self._loaders.user.prime_many({self._viewer.id: self._viewer})
        return self._viewer

    def token_user_id(self) -> int | None:
        """The user id a valid token names, without reading the account (None: anonymous).
        An invalid or expired token is UNAUTHENTICATED. Whoever acts on it checks the account
        itself (the checkout does, in its first statement)."""
        if self._viewer_loaded:
            return self._viewer.id if self._viewer else None
        token = self.token
        return None if token is None else self.deps.tokens.verify(token)

    def token_issued_at(self) -> datetime | None:
        token = self.token
        return None if token is None else self.deps.tokens.issued_at(token)

    def know_viewer(self, user: User) -> None:
        """The viewer, as a use case has just read them: no second query for them."""
        self._viewer, self._viewer_loaded = user, True
        if self._loaders is not None and self._shared is None:
            self._loaders.user.prime_many({user.id: user})

    async def reread_viewer(self) -> User | None:
        """The viewer read again (a long-lived connection's role may have changed since);
        the connection's later answers use it too."""
        token = self.token
        viewer = None if token is None else \
            await user_for_token(reader=self.deps.reader, tokens=self.deps.tokens, token=token)
        self._viewer, self._viewer_loaded = viewer, True
        return viewer

    def user_id_for_logs(self) -> int | None:
        """Who made the request, for the log line: the loaded viewer, or the id a valid token
        names (no database read just for logging)."""
        if self._viewer_loaded:
            return self._viewer.id if self._viewer else None
        try:
            token = self.token
            return self.deps.tokens.verify(token) if token else None
        except Unauthenticated:
            return None

    def forget_viewer(self) -> None:
        self._viewer_loaded = False
        self._viewer = None

    async def require_user(self) -> User:
        viewer = await self.viewer()
        if viewer is None:
            raise Unauthenticated()
        return viewer

    async def require_admin(self) -> User:
        viewer = await self.require_user()
        if not viewer.is_admin:
            raise Forbidden("Only admins may do this.")
        return viewer

    async def is_admin(self) -> bool:
        viewer = await self.viewer()
        return viewer is not None and viewer.is_admin
