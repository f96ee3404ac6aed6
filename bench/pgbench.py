"""The database's ceiling: pgbench running one checkout's database work (bench/sql/*.sql).

`python -m bench.pgbench --database NAME` on an existing bench database, or through
`python -m bench.run pgbench` (which creates, seeds and drops one).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import SERVER_URL, SQL, latency_summary, log, reset_stock

SCRIPTS = {"lock_first": SQL / "checkout_lock_first.sql",
           "update_last": SQL / "checkout_update_last.sql"}


def pgbench(database: str, *, script: str = "lock_first", cart: str = "uniform",
            clients: int = 32, duration: float = 4, isolation: str = "READ COMMITTED",
            max_tries: int = 10) -> dict[str, Any]:
    """One pgbench run; throughput, latency percentiles (from the per-transaction log),
    retries and failures (pgbench retries 40001/40P01 up to `max_tries`, without backoff)."""
    reset_stock(database)
    host = re.sub(r"^postgresql://(?:[^@]*@)?", "", SERVER_URL).split("/")[0]
    hostname, _, port = host.partition(":")
    user = re.match(r"^postgresql://([^@:]+)", SERVER_URL)
    env = dict(os.environ)
    if isolation.upper() != "READ COMMITTED":
        env["PGOPTIONS"] = f"-c default_transaction_isolation={isolation.lower()}"
    with tempfile.TemporaryDirectory(prefix="pgbench-") as tmp:
        prefix = str(Path(tmp) / "tx")
        command = ["pgbench", "-h", hostname, "-p", port or "5432",
                   "-U", user.group(1) if user else "postgres", "-n", "-M", "prepared",
                   "-f", str(SCRIPTS[script]), "-D", f"hot={1 if cart == 'hot' else 0}",
                   "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(duration)),
                   f"--max-tries={max_tries}", "--failures-detailed", "-l",
                   f"--log-prefix={prefix}", database]
        completed = subprocess.run(command, capture_output=True, text=True, env=env,
                                   check=False, cwd=tmp)
        if completed.returncode != 0:
            raise RuntimeError(f"pgbench failed: {completed.stderr[-2000:]}")
        latencies: list[float] = []
        for log_file in Path(tmp).glob("tx*"):
            for line in log_file.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 6 and fields[2].isdigit():  # failed ones log "failed"
                    latencies.append(int(fields[2]) / 1000)
    out = completed.stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    processed = int(re.search(r"number of transactions actually processed: (\d+)",
                              out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"number of failed transactions: (\d+)", out)
    retried = re.search(r"number of transactions retried: (\d+)", out)
    retries = re.search(r"total number of retries: (\d+)", out)
    return {"script": script, "cart": cart, "clients": clients, "isolation": isolation,
            "throughput": round(tps, 1), "transactions": processed,
            "failed": int(failed.group(1)) if failed else 0,
            "retried": int(retried.group(1)) if retried else 0,
            "retries": int(retries.group(1)) if retries else 0,
            "latency": latency_summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="lock_first")
    parser.add_argument("--cart", choices=["hot", "uniform"], default="uniform")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--isolation", default="READ COMMITTED")
    args = parser.parse_args()
    result = pgbench(args.database, script=args.script, cart=args.cart, clients=args.clients,
                     duration=args.duration, isolation=args.isolation)
    log(str(result))


if __name__ == "__main__":
    main()
