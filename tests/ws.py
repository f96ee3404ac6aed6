"""A small graphql-transport-ws client for tests (what a browser's client library does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

PROTOCOL = "graphql-transport-ws"


class SubscriptionError(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors

    @property
    def code(self) -> str | None:
        return (self.errors[0].get("extensions") or {}).get("code")


class GraphQLWebSocket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._next_id = 0
        self._inbox: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, address: str, *, token: str | None = None,
                   origin: str | None = None, init: dict[str, Any] | None = None
                   ) -> GraphQLWebSocket:
        connection = await connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL],  # type: ignore[list-item]
                                   origin=origin, open_timeout=10)  # type: ignore[arg-type]
        payload = init if init is not None else \
            ({"authorization": f"Bearer {token}"} if token else {})
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(connection.recv(), 10))
        if ack["type"] != "connection_ack":
            raise AssertionError(f"expected connection_ack, got {ack}")
        return cls(connection)

    async def _read(self) -> None:
        async for raw in self.connection:
            message = json.loads(raw)
            if message["type"] == "ping":
                await self.connection.send(json.dumps({"type": "pong"}))
                continue
            if "id" in message:
                self._inbox.setdefault(message["id"], asyncio.Queue()).put_nowait(message)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._next_id += 1
        operation_id = str(self._next_id)
        self._inbox.setdefault(operation_id, asyncio.Queue())
        await self.connection.send(json.dumps({
            "id": operation_id, "type": "subscribe",
            "payload": {"query": query, "variables": variables or {}}}))
        return operation_id

    async def next(self, operation_id: str, timeout: float = 10) -> dict[str, Any]:
        """The next result's data; SubscriptionError for errors; StopAsyncIteration at the end."""
        message = await asyncio.wait_for(self._inbox[operation_id].get(), timeout)
        if message["type"] == "next":
            payload = message["payload"]
            if payload.get("errors"):
                raise SubscriptionError(payload["errors"])
            return payload["data"]
        if message["type"] == "error":
            raise SubscriptionError(message["payload"])
        if message["type"] == "complete":
            raise StopAsyncIteration
        raise AssertionError(f"unexpected message {message}")

    async def nothing_for(self, operation_id: str, seconds: float) -> bool:
        try:
            message = await asyncio.wait_for(self._inbox[operation_id].get(), seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {message}")

    async def complete(self, operation_id: str) -> None:
        await self.connection.send(json.dumps({"id": operation_id, "type": "complete"}))

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
