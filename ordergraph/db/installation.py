"""This installation's id: generated once, stored in the database, read at start-up."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ordergraph.db.tables import installation

_FIRST = sa.select(installation.c.id).order_by(installation.c.created_at, installation.c.id) \
    .limit(1)


async def installation_id(engine: AsyncEngine) -> str:
    """The stored id; the first caller on an empty table generates it. Every process that
    shares the database reads the same one (the oldest row wins a first-start race)."""
    async with engine.begin() as conn:
        found = await conn.scalar(_FIRST)
        if found is not None:
            return str(found)
        await conn.execute(sa.insert(installation).values(
            id=f"og{secrets.token_hex(5)}", created_at=datetime.now(UTC)))
    async with engine.connect() as conn:
        return str(await conn.scalar(_FIRST))
