"""Flame graphs of the app under one bench point: `python -m bench.profile`.

    python -m bench.profile --database ordergraph_bench_dev flashsale -o bench/profiles/x.svg
    python -m bench.profile --database ordergraph_bench_dev fanout --subscribers 1000 -o ...
    python -m bench.profile --database ordergraph_bench_dev catalog -o ...
    python -m bench.profile --database ordergraph_bench_dev checkout --cart uniform -o ...

The server runs under `py-spy record` (200 samples/s, --nonblocking; install it into .venv:
`.venv/bin/pip install py-spy`, it is not a dependency) and the SVG is written when it stops.
The point's own numbers are printed too, but a profiled server is slower: quote numbers from
`bench.run`, not from here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import catalog, checkout, fanout
from bench.common import log
from bench.harness import app_env, app_server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("point", choices=("flashsale", "fanout", "catalog", "checkout"))
    parser.add_argument("--database", required=True)
    parser.add_argument("-o", "--output", required=True, help="the flame graph (.svg)")
    parser.add_argument("--subscribers", type=int, default=1000,
                        help="watchers (flashsale) or subscribers (fanout)")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=15, help="stock changes (fanout)")
    parser.add_argument("--cart", choices=("hot", "uniform"), default="uniform",
                        help="the checkout point's carts")
    parser.add_argument("--clients", type=int, default=32, help="checkout clients")
    args = parser.parse_args()
    output = str(Path(args.output).resolve())
    if args.point == "flashsale":
        result = fanout.flashsale_point(args.database, checkout.tokens_file(), args.subscribers,
                                        duration=args.duration, profile=output)
    elif args.point == "fanout":
        result = fanout.fanout_point(args.database, args.subscribers, events=args.events,
                                     profile=output)
    elif args.point == "checkout":
        tokens = checkout.tokens_file()
        with app_server(app_env(args.database), name="checkout", profile=output) as server:
            result = checkout.checkout_point(server, args.database, tokens, cart=args.cart,
                                             clients=args.clients, duration=args.duration,
                                             warmup=1.0)
    else:
        tokens = checkout.tokens_file()
        with app_server(app_env(args.database), name="catalog", profile=output) as server:
            result = catalog.catalog_point(server, tokens, duration=args.duration)
    log(json.dumps(result)[:2000])


if __name__ == "__main__":
    main()
