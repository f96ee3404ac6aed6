"""A response cache for anonymous catalog reads, with ETags (README: Performance).

The catalog page is the same for every visitor without a token, and during a sale it is read
far more often than it changes. So an anonymous query whose root fields are all catalog reads
(`products`, `product`) is answered from this process's memory when the same document, with
the same variables and operation name, was answered before and nothing has changed since:

- **Invalidated by the hub's events.** Every stock change and product change this instance
  publishes (at once, before it goes out) or hears from the live hub (other instances, the
  sweeper) empties the cache. A response computed while a change went by is not stored (the
  generation it started in is over), so what the cache holds is never older than the last
  change it heard of. While the hub cannot hear (Redis away) the cache is bypassed, and after
  it reconnects it starts empty: the changes of the gap were never heard.
- **Only what every anonymous caller would get.** Requests with an Authorization header are
  never answered from the cache and never fill it, so nothing an admin or a customer sees
  can reach anyone else; a response with any error is not stored.
- **ETag and Cache-Control.** A stored response carries `ETag` (a hash of its bytes) and
  `Cache-Control: public, no-cache` (a browser or CDN may keep it but must ask again); a
  request whose `If-None-Match` names the current ETag gets `304 Not Modified`, no body.
  GraphQL over GET (`/graphql?query=...&variables=...`) makes this work for browsers and
  CDNs; POST is cached the same way in this process.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http.parse_content_type import parse_content_type

CACHEABLE_ROOT_FIELDS = frozenset({"products", "product", "__typename"})
MAX_ENTRIES = 256
MAX_DOCUMENTS = 1024  # remembered cacheable-or-not decisions (one parse per document)
MAX_BODY = 1 << 20
CACHE_CONTROL = b"public, no-cache"
# The longest a stored response is answered: a bound on staleness from a change this process
# could not hear (a cron `ordergraph sweep` on the in-memory broadcast), short enough not to
# matter, long enough that a crowd reading the page is still answered from memory.
MAX_AGE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    etag: bytes
    stored_at: float = 0.0  # time.monotonic()


def _etag(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


class ResponseCache:
    """Anonymous catalog responses of this process, emptied by every catalog change."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES,
                 hearing: Callable[[], object] | None = None) -> None:
        """`hearing()` names the hub's current unbroken connection (None while it hears
        nothing): the cache is trusted only while that stays the same."""
        self._hearing = hearing or (lambda: 0)
        self._heard_on: object = self._hearing()
        self._entries: OrderedDict[tuple[str, str, str | None], Entry] = OrderedDict()
        self._documents: OrderedDict[tuple[str, str | None], bool] = OrderedDict()
        self._max = max_entries
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def invalidate(self, *_: Any) -> None:
        """Something the catalog shows changed: forget every response."""
        self.generation += 1
        self._entries.clear()

    def _trusted(self) -> bool:
        """Whether every change since the entries were stored has been heard."""
        connection = self._hearing()
        if connection is None or connection != self._heard_on:
            self._heard_on = connection
            self.invalidate()
        return connection is not None

    def get(self, key: tuple[str, str, str | None]) -> Entry | None:
        if not self._trusted():
            return None
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.stored_at > MAX_AGE_SECONDS:
            del self._entries[key]
            return None
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, str, str | None], generation: int, body: bytes) -> Entry:
        entry = Entry(body=body, etag=_etag(body), stored_at=time.monotonic())
        if self._trusted() and generation == self.generation:  # nothing changed meanwhile
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return entry

    def cacheable(self, document: str, operation_name: str | None) -> bool:
        """A query whose root fields are all catalog reads (decided once per document)."""
        key = (document, operation_name)
        known = self._documents.get(key)
        if known is None:
            known = _catalog_query(document, operation_name)
            self._documents[key] = known
            while len(self._documents) > MAX_DOCUMENTS:
                self._documents.popitem(last=False)
        return known


def _catalog_query(document: str, operation_name: str | None) -> bool:
    try:
        parsed = parse(document, max_tokens=2000)
    except GraphQLError:
        return False
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        return False
    selections = operations[0].selection_set.selections
    # Plain fields only: a fragment at the root could name anything.
    return all(getattr(s, "name", None) is not None and s.name.value in CACHEABLE_ROOT_FIELDS
               and s.kind == "field" and not s.directives for s in selections)


def _request(scope: Scope, body: bytes | None) -> tuple[str, str, str | None] | None:
    """(document, canonical variables, operation name) of a GraphQL request, or None."""
    # `variables` and `extensions` are an object or absent/null, exactly as the endpoint
    # takes them: anything else (an empty GET parameter, [], "", 0, false) it refuses, so
    # the cache must not answer it either.
    if body is None:  # GET
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        query = (params.get("query") or [None])[0]
        name = (params.get("operationName") or [None])[0]
        try:
            variables: Any = _object_or_none(params, "variables")
            _object_or_none(params, "extensions")
        except ValueError:
            return None
    else:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or not all(
                isinstance(data.get(key), dict | None) for key in ("variables", "extensions")):
            return None  # refused by the endpoint
        query, variables, name = data.get("query"), data.get("variables"), \
            data.get("operationName")
    variables = {} if variables is None else variables
    if not isinstance(query, str) or not isinstance(variables, dict) or \
            not (name is None or isinstance(name, str)):
        return None
    return query, json.dumps(variables, sort_keys=True, separators=(",", ":")), name


def _object_or_none(params: dict[str, list[str]], key: str) -> dict[str, Any] | None:
    """A GET parameter holding a JSON object, None when absent; ValueError otherwise."""
    if key not in params:
        return None
    value = json.loads(params[key][0])  # an empty value is not JSON: ValueError
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    return value


def _json_content(scope: Scope) -> bool:
    """A POST the endpoint reads as JSON (its own test, strawberry's parse_content_type), so
    that the cache never answers what the endpoint refuses (README "Abuse limits")."""
    content_type, _ = parse_content_type(
        (_header(scope, b"content-type") or b"").decode("latin-1"))
    return "application/json" in content_type


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


def _matches(if_none_match: bytes | None, etag: bytes) -> bool:
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(b",")]
    return etag in tags or b"*" in tags or b"W/" + etag in tags


async def serve(cache: ResponseCache, app: ASGIApp, scope: Scope, receive: Receive,
                send: Send, record: Callable[[str | None, float], None] | None = None) -> None:
    """Answer an HTTP GraphQL request from the cache when it can, else through `app`
    (filling the cache with what `app` answers, when it may)."""
    method = scope.get("method")
    if method not in ("GET", "POST") or _header(scope, b"authorization") is not None or \
            (method == "POST" and not _json_content(scope)):
        await app(scope, receive, send)  # the endpoint's refusals are its own (400)
        return
    body: bytes | None = None
    if method == "POST":
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await app(scope, _replay(b"", receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            more = message.get("more_body", False)
            if size > MAX_BODY:
                break
        body = b"".join(chunks)
        if more:  # too large to be ours: let the app refuse it (it reads the rest)
            await app(scope, _replay(body, receive, more=True), send)
            return
    request = _request(scope, body)
    if request is None or not cache.cacheable(request[0], request[2]):
        await app(scope, _replay(body, receive) if body is not None else receive, send)
        return
    started = time.perf_counter()
    if_none_match = _header(scope, b"if-none-match")
    entry = cache.get(request)
    if entry is not None:
        cache.hits += 1
        scope.setdefault("state", {}).setdefault("graphql", []).append(
            {"operation": request[2], "outcome": "ok", "user_id": None})
        await _answer(send, entry, not_modified=_matches(if_none_match, entry.etag))
        if record is not None:
            record(request[2], time.perf_counter() - started)
        return
    cache.misses += 1
    generation = cache.generation
    captured: list[Message] = []

    async def hold(message: Message) -> None:
        captured.append(message)

    await app(scope, _replay(body, receive) if body is not None else receive, hold)
    start = next((m for m in captured if m["type"] == "http.response.start"), None)
    outcomes = [op.get("outcome") for op in (scope.get("state") or {}).get("graphql", [])]
    streamed = any(m["type"] == "http.response.body" and m.get("more_body") for m in captured)
    if start is None or start["status"] != 200 or outcomes != ["ok"] or streamed:
        for message in captured:
            await send(message)
        return
    response_body = b"".join(m.get("body", b"") for m in captured
                             if m["type"] == "http.response.body")
    entry = cache.put(request, generation, response_body)
    headers = [(k, v) for k, v in start.get("headers", [])
               if k.lower() not in (b"etag", b"cache-control", b"content-length")]
    await _answer(send, entry, not_modified=_matches(if_none_match, entry.etag),
                  headers=headers)


async def _answer(send: Send, entry: Entry, *, not_modified: bool,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    base = headers if headers is not None else [(b"content-type", b"application/json")]
    headers = [*base, (b"etag", entry.etag), (b"cache-control", CACHE_CONTROL),
               (b"vary", b"authorization")]
    if not_modified:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(len(entry.body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": entry.body})


def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """A receive that hands the app the body already read, then the rest as it comes."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed
