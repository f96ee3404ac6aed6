"""The outbox and the password reset tokens: rows written inside the unit of work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.db.tables import outbox, password_resets, products, users
from ordergraph.domain.mail import MailDraft, MailKind, QueuedMail


async def queue_mail(conn: AsyncConnection, drafts: Sequence[MailDraft], *,
                     at: datetime) -> None:
    """Insert the drafts as PENDING rows, with what their templates need that the events do
    not carry (the recipient's address and name, the products' names), read in this same
    transaction."""
    if not drafts:
        return
    user_ids = sorted({draft.user_id for draft in drafts})
    people = {row.id: row for row in await conn.execute(
        sa.select(users.c.id, users.c.email, users.c.name).where(users.c.id.in_(user_ids)))}
    product_ids = sorted({int(line["product_id"]) for draft in drafts
                          for line in draft.data.get("order", {}).get("lines", [])})
    names: dict[int, str] = {}
    if product_ids:
        names = {row.id: row.name for row in await conn.execute(
            sa.select(products.c.id, products.c.name).where(products.c.id.in_(product_ids)))}
    values = []
    for draft in drafts:
        person = people.get(draft.user_id)
        if person is None:
            continue
        data: dict[str, Any] = {**draft.data, "name": person.name}
        if "order" in data:
            data["product_names"] = {str(line["product_id"]): names.get(
                int(line["product_id"]), f"Product {line['product_id']}")
                for line in data["order"]["lines"]}
        values.append({"kind": draft.kind.value, "user_id": draft.user_id,
                       "recipient": person.email, "data": data, "status": "PENDING",
                       "attempts": 0, "next_attempt_at": at, "created_at": at})
    if values:
        await conn.execute(sa.insert(outbox), values)


class SqlOutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim(self, *, now: datetime, limit: int,
                    retry_at: Callable[[int], datetime]) -> list[QueuedMail]:
        # SKIP LOCKED: a second sender passes over rows the first is claiming. SQLite has no
        # row locks and ignores it; there the writes of two claimers are serialized, and the
        # guarded UPDATE below lets only the first take a row.
        found = (await self._conn.execute(
            sa.select(outbox).where(outbox.c.status == "PENDING",
                                    outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit)
            .with_for_update(skip_locked=True))).mappings().all()
        claimed = []
        for row in found:
            attempts = row["attempts"] + 1
            result = await self._conn.execute(
                sa.update(outbox).where(outbox.c.id == row["id"],
                                        outbox.c.attempts == row["attempts"],
                                        outbox.c.status == "PENDING")
                .values(attempts=attempts, next_attempt_at=retry_at(attempts)))
            if result.rowcount == 1:
                claimed.append(QueuedMail(id=row["id"], kind=MailKind(row["kind"]),
                                          to=row["recipient"], data=dict(row["data"]),
                                          attempts=attempts, created_at=row["created_at"]))
        return claimed

    async def sent(self, mail_id: int, *, attempts: int, at: datetime) -> None:
        row = (await self._conn.execute(
            sa.select(outbox.c.kind, outbox.c.data).where(outbox.c.id == mail_id))).first()
        values: dict[str, Any] = {"status": "SENT", "sent_at": at, "last_error": None}
        if row is not None and row.kind == MailKind.PASSWORD_RESET.value:
            # The raw token lived here only until it was sent.
            values["data"] = {**row.data, "token": None}
        await self._conn.execute(
            sa.update(outbox).where(outbox.c.id == mail_id, outbox.c.attempts == attempts)
            .values(values))

    async def failed(self, mail_id: int, *, attempts: int, error: str, at: datetime,
                     give_up: bool) -> None:
        values: dict[str, Any] = {"last_error": error[:2000]}
        if give_up:
            values["status"] = "FAILED"
        await self._conn.execute(
            sa.update(outbox).where(outbox.c.id == mail_id, outbox.c.attempts == attempts)
            .values(values))


class SqlPasswordResetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, user_id: int, token_hash: str, created_at: datetime,
                  expires_at: datetime) -> None:
        await self._conn.execute(sa.insert(password_resets).values(
            user_id=user_id, token_hash=token_hash, created_at=created_at,
            expires_at=expires_at))

    async def usable(self, token_hash: str, *, now: datetime) -> bool:
        found = await self._conn.scalar(
            sa.select(password_resets.c.id)
            .where(password_resets.c.token_hash == token_hash,
                   password_resets.c.used_at.is_(None), password_resets.c.expires_at > now))
        return found is not None

    async def use(self, token_hash: str, *, now: datetime) -> int | None:
        # One guarded UPDATE: of two racing calls only one changes the row.
        user_id = await self._conn.scalar(
            sa.update(password_resets)
            .where(password_resets.c.token_hash == token_hash,
                   password_resets.c.used_at.is_(None), password_resets.c.expires_at > now)
            .values(used_at=now).returning(password_resets.c.user_id))
        return int(user_id) if user_id is not None else None

    async def revoke_all(self, user_id: int, *, now: datetime) -> None:
        await self._conn.execute(
            sa.update(password_resets).where(password_resets.c.user_id == user_id,
                                             password_resets.c.used_at.is_(None))
            .values(used_at=now))
