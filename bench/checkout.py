"""Checkout through the app: throughput, latency, retries and the oversell check.

Every point resets the stock, notes the last order id, drives the app from a load generator
process (bench/loadgen.py), then reads /metrics (retries, checkouts) and the database (oversell)
for that point alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PLENTY,
    SELLOUT_PRODUCT,
    USERS,
    cpu_seconds,
    high_water,
    mint_tokens,
    reset_stock,
    stock_audit,
)
from bench.harness import AppServer, run_json

RETRIES = "ordergraph_transaction_retries_total"
CHECKOUTS = "ordergraph_checkouts_total"


def tokens_file() -> Path:
    """Access tokens for every seeded customer, minted once (as if they had logged in)."""
    path = Path(tempfile.gettempdir()) / "ordergraph-bench-tokens.json"
    tokens = mint_tokens(range(1, USERS + 1))
    path.write_text(json.dumps({str(uid): token for uid, token in tokens.items()}))
    return path


def load(server: AppServer, tokens: Path, *, scenario: str, cart: str, clients: int,
         duration: float, warmup: float, seed: int = 1) -> dict[str, Any]:
    spec = {"address": server.address, "scenario": scenario, "cart": cart, "clients": clients,
            "duration": duration, "warmup": warmup, "tokens_file": str(tokens), "seed": seed}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="loadgen-",
                                     delete=False) as spec_file:
        json.dump(spec, spec_file)
    try:
        return run_json([sys.executable, "-m", "bench.loadgen", spec_file.name],
                        timeout=duration + warmup + 120)
    finally:
        Path(spec_file.name).unlink(missing_ok=True)


def checkout_point(server: AppServer, database: str, tokens: Path, *, cart: str, clients: int,
                   duration: float, warmup: float) -> dict[str, Any]:
    """Checkouts with plenty of stock: every one should succeed; nothing may be lost."""
    reset_stock(database)
    since = high_water(database)
    before, cpu_before, started = server.metrics(), cpu_seconds(server.pid), time.monotonic()
    result = load(server, tokens, scenario="checkout", cart=cart, clients=clients,
                  duration=duration, warmup=warmup)
    after, cpu_after = server.metrics(), cpu_seconds(server.pid)
    elapsed = time.monotonic() - started
    served = after.get(CHECKOUTS, 0) - before.get(CHECKOUTS, 0)
    retries = after.get(RETRIES, 0) - before.get(RETRIES, 0)
    result.update({
        "cart": cart,
        "retries_per_checkout": round(retries / served, 3) if served else None,
        "server_cpu_ms_per_checkout": round((cpu_after - cpu_before) / served * 1000, 2)
        if served else None,
        "server_cpu_share": round((cpu_after - cpu_before) / elapsed, 2),
        "oversell": stock_audit(database, since, PLENTY),
    })
    return result


def sellout_point(server: AppServer, database: str, tokens: Path, *, naive: bool,
                  stock: int = 200, clients: int = 32, duration: float = 3.0
                  ) -> dict[str, Any]:
    """Many more buyers than units of one product: the app must sell exactly `stock` units;
    the naive read-then-write control (bench/server.py) is expected to sell more."""
    reset_stock(database, sellout=stock)
    since = high_water(database)
    result = load(server, tokens, scenario="naive" if naive else "checkout", cart="sellout",
                  clients=clients, duration=duration, warmup=0.0)
    result["stock"] = stock
    result["oversell"] = stock_audit(database, since, stock, products=[SELLOUT_PRODUCT])
    return result
