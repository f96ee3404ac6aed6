"""Running the app under test: a uvicorn process of its own, its metrics, the Stripe emulator."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    JWT_SECRET,
    ROOT,
    dsn_for,
    free_port,
    log,
    sqlalchemy_url,
    stop_process,
)


@dataclass
class AppServer:
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str, timeout: float = 10) -> bytes:
        with urllib.request.urlopen(f"http://{self.address}{path}",
                                    timeout=timeout) as response:
            return response.read()

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post_json(self, path: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"http://{self.address}{path}",
                                         data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def graphql(self, query: str, variables: dict[str, Any] | None = None,
                token: str | None = None) -> dict[str, Any]:
        body = self.post_json("/graphql", {"query": query, "variables": variables or {}},
                              token)
        if body.get("errors"):
            raise RuntimeError(json.dumps(body["errors"]))
        return body["data"]

    def metrics(self) -> dict[str, float]:
        """The Prometheus counters we read, summed over their labels where labelled."""
        text = self.get("/metrics").decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            match = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$", line)
            if not match:
                continue
            name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
            values[name + labels] = value
            values[name] = values.get(name, 0.0) + value if labels else value
        return values

    def statements(self) -> int:
        return int(self.get_json("/_bench/statements")["statements"])

    def log_problems(self) -> dict[str, int]:
        """Warnings and errors the app logged (one JSON object per line)."""
        counts: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    if "Traceback" in line or "ERROR" in line:
                        counts["unparsed-error"] = counts.get("unparsed-error", 0) + 1
                    continue
                if record.get("level") in ("warning", "error", "critical"):
                    key = f"{record['level']}: {record.get('message', '')[:80]}"
                    counts[key] = counts.get(key, 0) + 1
        return counts


def app_env(database: str, **overrides: str) -> dict[str, str]:
    """The environment of a production-like instance (JSON logs, no GraphiQL/introspection)."""
    env = {
        "DATABASE_URL": sqlalchemy_url(database),
        "DATABASE_ISOLATION_LEVEL": "READ COMMITTED",
        "JWT_SECRET": JWT_SECRET,
        "ORDERGRAPH_ENV": "development",  # production would demand real Stripe keys
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "GRAPHIQL": "false",
        "INTROSPECTION": "false",
        "BROADCAST_URL": "memory://",
        "BENCH_GATEWAY": "null",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        # The load clients check out again and again without paying: no per-customer limit.
        "MAX_UNPAID_ORDERS": "0",
        "MAX_UNPAID_UNITS": "0",
    }
    env.update(overrides)
    return env


@contextlib.contextmanager
def app_server(env: dict[str, str], *, name: str = "app",
               profile: str | None = None, module: str = "bench.server",
               args: tuple[str, ...] = ()) -> Iterator[AppServer]:
    """uvicorn serving bench.server:create on a free loopback port, stopped afterwards.

    With `profile` (a path), the server runs under `py-spy record` and writes a flame graph.
    `module="bench.bare"` serves the bare ceilings instead (bench/bare.py). `args` go to the
    server's command line (e.g. `("--workers", "2")`).
    """
    log_dir = Path(tempfile.mkdtemp(prefix="ordergraph-bench-"))
    log_path = log_dir / f"{name}.log"
    clean_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("DATABASE_", "STRIPE_", "BROADCAST_", "BENCH_GATEWAY"))}
    for attempt in range(3):
        # The port is free when chosen, but until uvicorn binds it another socket of the
        # machine may take it (the app's own local SMTP sink, for one): then try another.
        port = free_port()
        command = [sys.executable, "-m", module, "--port", str(port), *args]
        if profile:
            # An .svg is a flame graph; any other name gets py-spy's collapsed stacks (text).
            kind = "flamegraph" if profile.endswith(".svg") else "raw"
            command = [str(Path(sys.executable).parent / "py-spy"), "record", "-o", profile,
                       "--format", kind, "--rate", "200", "--nonblocking", "--", *command]
        with log_path.open("wb") as sink:
            process = subprocess.Popen(command, env={**clean_env, **env}, cwd=ROOT,
                                       stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        server = AppServer(process, f"127.0.0.1:{port}", log_path, env)
        try:
            _wait_ready(server)
            break
        except RuntimeError:
            stop_process(process, timeout=15)
            if attempt == 2 or "address already in use" not in log_path.read_text():
                raise
    try:
        yield server
    finally:
        if profile and process.poll() is None:
            # SIGINT: py-spy writes its flame graph once the server (which stops too) exits.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
        stop_process(process, timeout=30 if profile else 15)
        problems = server.log_problems()
        if problems:
            log(f"  [{name}] app log: " + "; ".join(f"{n} x {k}" for k, n in
                                                   sorted(problems.items())[:5]))
        with contextlib.suppress(OSError):
            log_path.unlink()
            log_dir.rmdir()


def _wait_ready(server: AppServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the app exited: {server.log_path.read_text()[-2000:]}")
        try:
            if json.loads(server.get("/readyz", timeout=2)).get("status") == "ok":
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the app did not become ready")


def bare_server(database: str, **env: str) -> contextlib.AbstractContextManager[AppServer]:
    """The bare Starlette ceilings (bench/bare.py) on the bench database."""
    return app_server({"BENCH_DSN": dsn_for(database), **env}, name="bare",
                      module="bench.bare")


@contextlib.contextmanager
def localstripe() -> Iterator[str]:
    """The Stripe emulator on loopback (ordergraph's own runner); yields its api_base."""
    from ordergraph.adapters.localstripe import LocalStripe

    emulator = LocalStripe.start()
    try:
        yield emulator.api_base
    finally:
        emulator.stop()


def run_json(command: list[str], *, timeout: float = 600,
             env: dict[str, str] | None = None) -> Any:
    """Run a bench child process that prints one JSON document on stdout."""
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=timeout,
                               env={**os.environ, **(env or {})}, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... failed ({completed.returncode}):\n"
                           f"{completed.stderr.decode()[-3000:]}")
    return json.loads(completed.stdout)
