"""End-to-end fixtures: the app started as a user starts it, and Debian's headless Chromium.

Each test gets a fresh PostgreSQL database, `ordergraph migrate` + `seed`, and
`ordergraph serve` in local payments mode (no Stripe variables: the server runs the Stripe
emulator as its child and registers its own webhook). One Chromium per test module.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from ordergraph.adapters.stripe.emulator import free_port
from tests.e2e.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FREE_SHIPPING_OVER_CENTS,
    ORDERGRAPH,
    SHIPPING_FLAT_CENTS,
    Browsing,
    Shop,
)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run([*ORDERGRAPH, *args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, f"ordergraph {' '.join(args)} failed:\n{result.stderr}"


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path,
              timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()}")


@pytest.fixture
def shop(fresh_pg_database: str, tmp_path: Path) -> Iterator[Shop]:
    """A fresh database, migrated and seeded, served by `ordergraph serve` on a free port."""
    env = {**os.environ, "DATABASE_URL": fresh_pg_database, "ORDERGRAPH_ENV": "development",
           "STRIPE_API_BASE": "", "STRIPE_SECRET_KEY": "", "STRIPE_PUBLISHABLE_KEY": "",
           "STRIPE_WEBHOOK_SECRET": "", "BROADCAST_URL": "", "CORS_ORIGINS": "",
           "LOG_LEVEL": "WARNING",
           # Shipping costs $4.99, free from $500: the journeys see both.
           "SHIPPING_FLAT_CENTS": str(SHIPPING_FLAT_CENTS),
           "FREE_SHIPPING_OVER_CENTS": str(FREE_SHIPPING_OVER_CENTS)}
    _run(["migrate"], env, tmp_path)
    _run(["seed"], env, tmp_path)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output, subprocess.Popen(
            [*ORDERGRAPH, "serve", "--port", str(port)], env=env, cwd=tmp_path,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True) as server:
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(f"{base}/healthz", server, log)
            yield Shop(base=base, database_url=fresh_pg_database, log=log)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


# ---- the browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browse(browser: Browser, request: pytest.FixtureRequest, shop: Shop) -> Iterator[Browsing]:
    name = re.sub(r"\W+", "-", request.node.name).strip("-")
    browsing = Browsing(browser=browser, name=name)
    yield browsing
    call = getattr(request.node, "report_call", None)
    failed = call is None or call.failed
    browsing.close(failed)
    if failed:
        print(f"---- server log ----\n{shop.log.read_text()[-5000:]}")
    browsing.assert_clean()
