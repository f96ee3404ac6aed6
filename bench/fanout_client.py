"""Many graphql-transport-ws subscribers in one process of their own (bench/fanout.py runs it).

A minimal WebSocket client on asyncio.Protocol: each frame is time-stamped (CLOCK_MONOTONIC,
shared by every process on the machine) the moment its bytes arrive, before any decoding, so
the client's own cost stays out of the latency as far as possible. It offers
permessage-deflate like a browser does (unless --no-deflate).

Driven over stdin/stdout, one command per line:
  CONNECT N TOKEN        open N connections (connection_init with the token), wait for acks
  SUBSCRIBE QUERY_JSON   send one subscribe per connection at once; wait for a first message
  REPORT                 print {"events": {event_id: [receipt times]}, "errors": [...]}
  QUIT
Each command answers with one JSON line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import sys
import time
import zlib
from collections import defaultdict
from typing import Any

PROTOCOL = "graphql-transport-ws"


class Subscriber(asyncio.Protocol):
    def __init__(self, host: str, deflate: bool, client: Client) -> None:
        self.host = host
        self.offer_deflate = deflate
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.handshaken = asyncio.get_running_loop().create_future()
        self.acked = asyncio.get_running_loop().create_future()
        self.first: asyncio.Future[None] | None = None
        self.buffer = b""
        self.upgraded = False
        self.inflate: Any = None
        self.no_context_takeover = False
        self.fragments: list[bytes] = []
        self.fragment_compressed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        extensions = ("Sec-WebSocket-Extensions: permessage-deflate; "
                      "client_max_window_bits\r\n") if self.offer_deflate else ""
        self.transport.write((  # type: ignore[union-attr]
            f"GET /graphql HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n"
            f"{extensions}\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.errors.append(f"connection lost: {exc!r}")
        for future in (self.handshaken, self.acked, self.first):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
            if " 101 " not in head.split("\r\n", 1)[0]:
                self.handshaken.set_exception(ConnectionError(head.split("\r\n", 1)[0]))
                return
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-extensions" and \
                        "permessage-deflate" in value:
                    self.inflate = zlib.decompressobj(-15)
                    self.no_context_takeover = "server_no_context_takeover" in value
            self.upgraded = True
            self.handshaken.set_result(None)
        self._frames(now)

    def _frames(self, now: float) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, offset = struct.unpack(">H", buffer[2:4])[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, offset = struct.unpack(">Q", buffer[2:10])[0], 10
            if len(buffer) < offset + length:
                break
            payload, buffer = buffer[offset:offset + length], buffer[offset + length:]
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
            elif opcode in (0x1, 0x2, 0x0):
                if opcode != 0x0:
                    self.fragment_compressed = bool(first & 0x40)
                self.fragments.append(payload)
                if first & 0x80:  # FIN
                    message = b"".join(self.fragments)
                    self.fragments = []
                    if self.fragment_compressed:
                        message = self.inflate.decompress(message + b"\x00\x00\xff\xff")
                        if self.no_context_takeover:
                            self.inflate = zlib.decompressobj(-15)
                    self._message(message, now)
            elif opcode == 0x8:
                self.client.errors.append(f"closed by server: {payload[:2]!r}")
        self.buffer = buffer

    def _message(self, raw: bytes, now: float) -> None:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "connection_ack":
            self.acked.set_result(None)
        elif kind == "ping":
            self.send_json({"type": "pong"})
        elif kind == "next":
            payload = message["payload"]
            if payload.get("errors"):
                self.client.errors.append(json.dumps(payload["errors"])[:300])
                return
            data = next(iter(payload["data"].values()))
            if data.get("type") == "SNAPSHOT":
                if self.first is not None and not self.first.done():
                    self.first.set_result(None)
                return
            self.client.received[str(data["eventId"])].append(now)
        elif kind in ("error", "complete"):
            self.client.errors.append(json.dumps(message)[:300])

    def _send(self, opcode: int, payload: bytes) -> None:
        # Client frames must be masked; an all-zero mask is valid and costs no XOR.
        length = len(payload)
        if length < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, length)
        assert self.transport is not None
        self.transport.write(head + b"\x00\x00\x00\x00" + payload)

    def send_json(self, message: dict[str, Any]) -> None:
        self._send(0x1, json.dumps(message).encode())


class Client:
    def __init__(self, address: str, deflate: bool) -> None:
        self.address = address
        self.deflate = deflate
        self.subscribers: list[Subscriber] = []
        self.received: defaultdict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.operations = 0

    async def connect(self, count: int, token: str | None) -> dict[str, Any]:
        host, port = self.address.rsplit(":", 1)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        init = {"type": "connection_init",
                "payload": {"authorization": f"Bearer {token}"} if token else {}}
        semaphore = asyncio.Semaphore(100)  # a browser crowd, not a SYN flood

        async def one() -> Subscriber:
            async with semaphore:
                _, protocol = await loop.create_connection(
                    lambda: Subscriber(self.address, self.deflate, self), host, int(port))
                await asyncio.wait_for(protocol.handshaken, 30)
                protocol.send_json(init)
                await asyncio.wait_for(protocol.acked, 30)
                return protocol

        self.subscribers += await asyncio.gather(*[one() for _ in range(count)])
        return {"connected": len(self.subscribers),
                "seconds": round(time.monotonic() - started, 3),
                "deflate": sum(1 for s in self.subscribers if s.inflate is not None)}

    async def subscribe(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """All subscribe messages in one go, then wait for every first message (SNAPSHOT)."""
        self.operations += 1
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        for subscriber in self.subscribers:
            subscriber.first = loop.create_future()
            subscriber.send_json({"id": str(self.operations), "type": "subscribe",
                                  "payload": {"query": query, "variables": variables}})
        await asyncio.wait_for(asyncio.gather(*[s.first for s in self.subscribers
                                                if s.first is not None]), 120)
        return {"subscribed": len(self.subscribers),
                "seconds": round(time.monotonic() - started, 3)}

    def report(self) -> dict[str, Any]:
        return {"events": dict(self.received), "errors": self.errors[:20],
                "error_count": len(self.errors)}


async def main() -> None:
    address = sys.argv[1]
    client = Client(address, deflate="--no-deflate" not in sys.argv)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "QUIT":
            break
        command, _, rest = line.partition(" ")
        try:
            if command == "CONNECT":
                count, _, token = rest.partition(" ")
                answer = await client.connect(int(count), token or None)
            elif command == "SUBSCRIBE":
                request = json.loads(rest)
                answer = await client.subscribe(request["query"], request.get("variables", {}))
            elif command == "REPORT":
                answer = client.report()
            else:
                answer = {"error": f"unknown command {command}"}
        except Exception as error:
            answer = {"error": repr(error), "errors": client.errors[:5]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for subscriber in client.subscribers:
        if subscriber.transport is not None:
            subscriber.transport.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
    os._exit(0)
