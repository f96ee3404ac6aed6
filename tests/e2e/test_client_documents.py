"""Every GraphQL document the web client sends fits the served schema and the API's limits.

The documents live in one ES module (ordergraph/web/static/js/queries.js). Chromium imports it
as the client does (files served straight from the package, no app needed) and hands the
strings back, which are then validated like the server validates a request: the schema's
rules plus the depth / alias / cost limits.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import urlparse

import pytest
from graphql import OperationDefinitionNode, parse, specified_rules, validate
from playwright.sync_api import Browser, Route

import ordergraph.web
from ordergraph.schema.limits import QueryLimits, limits_rule
from ordergraph.schema.schema import build_schema

pytestmark = pytest.mark.e2e

STATIC = Path(ordergraph.web.__file__).parent / "static"
ORIGIN = "http://client.test"


def _serve_static(route: Route) -> None:
    path = urlparse(route.request.url).path.lstrip("/")
    file = (STATIC / path).resolve()
    if path == "blank":
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t</title>")
    elif file.is_file() and file.is_relative_to(STATIC.resolve()):
        kind = "text/javascript" if file.suffix == ".js" else mimetypes.guess_type(file.name)[0]
        route.fulfill(status=200, content_type=kind or "application/octet-stream",
                      body=file.read_bytes())
    else:
        route.fulfill(status=404, body="")


def test_every_client_document_is_valid_and_within_the_limits(browser: Browser) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(f"{ORIGIN}/**", _serve_static)
        page.goto(f"{ORIGIN}/blank")
        documents: dict[str, str] = page.evaluate(
            "async () => Object.fromEntries(Object.entries(await import('/js/queries.js')))")
    finally:
        context.close()

    assert len(documents) >= 20, sorted(documents)
    schema = build_schema()._schema
    rules = [*specified_rules, limits_rule(QueryLimits())]
    problems = {}
    for name, text in documents.items():
        document = parse(text)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        errors = [error.message for error in validate(schema, document, rules)]
        if len(operations) != 1 or operations[0].name is None:
            errors.append("expected exactly one named operation")
        if errors:
            problems[name] = errors
    assert problems == {}
