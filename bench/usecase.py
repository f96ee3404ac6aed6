"""The checkout use case alone: CPU per checkout without HTTP, GraphQL or a load generator.

    python -m bench.usecase --database ordergraph_bench_dev            # CPU ms per checkout
    python -m bench.usecase --database ordergraph_bench_dev --clients 1 --checkouts 100 \\
        --mark-stderr   # then count its round trips under strace (below)

It builds the app's `Deps` as the server does (`create_app`, null gateway, no sweeper), runs a
warm-up, then `--checkouts` checkouts of 1-3 products of 1,000 from `--clients` concurrent
tasks through `domain/services/checkout.checkout`, and prints one JSON line: checkouts/s and
CPU ms per checkout (`os.times()` of this process, user and system apart, the driver's
share included, PostgreSQL's not). On 2 shared cores the CPU per checkout moves 20 % between
runs: compare two versions by alternating them, e.g. from two worktrees (`cd WORKTREE && python -m
bench.usecase ...`, five times each, in turn), and read the medians.

Round trips: with `--mark-stderr` it writes `MEASURING` to stderr after the warm-up, so

    strace -f -e trace=sendto,recvfrom,write -o /tmp/trace python -m bench.usecase ... \\
        --clients 1 --checkouts 100 --mark-stderr

followed by counting the `sendto(` and (non-EAGAIN) `recvfrom(` lines after the `MEASURING`
write, divided by the checkouts, gives the messages sent and the answers waited for per
checkout (bench/RESULTS.md quotes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from datetime import timedelta

from bench.common import CATALOG_SIZE, JWT_SECRET, USERS, sqlalchemy_url


def environment(database: str) -> dict[str, str]:
    return {"DATABASE_URL": sqlalchemy_url(database), "JWT_SECRET": JWT_SECRET,
            "BROADCAST_URL": "memory://", "MAX_UNPAID_ORDERS": "0", "MAX_UNPAID_UNITS": "0",
            "STRIPE_WEBHOOK_SECRET": "whsec_bench", "ORDERGRAPH_ENV": "development"}


async def run(args: argparse.Namespace) -> dict[str, float]:
    os.environ.update(environment(args.database))
    from bench.server import NullGateway
    from ordergraph.domain.services.checkout import checkout
    from ordergraph.settings import Settings
    from ordergraph.web.app import create_app
    from ordergraph.wiring import Overrides

    gateway = NullGateway()
    app = create_app(Settings.from_env(), Overrides(gateway=gateway, run_sweeper=False))
    async with app.router.lifespan_context(app):
        deps = app.state.deps

        async def client(seed: int, count: int) -> None:
            rng = random.Random(seed)
            for _ in range(count):
                ids = sorted(rng.sample(range(1, CATALOG_SIZE + 1), rng.randint(1, 3)))
                await checkout(uow=deps.uow(), gateway=gateway, clock=deps.clock,
                               customer_id=rng.randint(1, USERS), lines=[(i, 1) for i in ids],
                               idempotency_key=uuid.uuid4().hex,
                               reservation_ttl=timedelta(minutes=15))

        await asyncio.gather(*(client(1000 + i, 50) for i in range(args.clients)))
        if args.mark_stderr:
            os.write(2, b"MEASURING\n")
        per_client = max(1, args.checkouts // args.clients)
        before, wall = os.times(), time.monotonic()
        await asyncio.gather(*(client(i, per_client) for i in range(args.clients)))
        after, wall = os.times(), time.monotonic() - wall
        user, system = after.user - before.user, after.system - before.system
    done = per_client * args.clients
    return {"checkouts": done, "checkouts_per_s": round(done / wall, 1),
            "cpu_ms_per_checkout": round((user + system) / done * 1000, 2),
            "user_ms": round(user / done * 1000, 2), "system_ms": round(system / done * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.usecase")
    parser.add_argument("--database", required=True, help="a seeded bench database")
    parser.add_argument("--checkouts", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--mark-stderr", action="store_true")
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(run(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
