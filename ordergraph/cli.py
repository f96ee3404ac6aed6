"""The `ordergraph` command: migrate, seed, serve, create-admin, sweep."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ordergraph import __version__
from ordergraph.adapters.logs import configure_logging
from ordergraph.adapters.stripe.emulator import wire_local_stripe
from ordergraph.db import migrate as migrations
from ordergraph.domain.errors import DomainError
from ordergraph.domain.model import SYSTEM, Role
from ordergraph.domain.services.auth import create_user, set_role_by_email
from ordergraph.domain.services.mail import DeliveryReport, deliver_mail
from ordergraph.domain.services.sweeper import SweepReport, sweep
from ordergraph.seed import seed_shop
from ordergraph.settings import Settings, SettingsError
from ordergraph.wiring import Adapters, open_adapters, password_hasher

log = logging.getLogger("ordergraph")


@asynccontextmanager
async def _tools(settings: Settings, *, live: bool = False, payments: bool = False
                 ) -> AsyncIterator[Adapters]:
    """The adapters a command needs, from the one composition root (ordergraph/wiring.py).
    `live`: publish the changes like the server does (BROADCAST_URL), so what a command
    changes (the sweeper's expiries, say) reaches the live subscribers of every instance."""
    async with open_adapters(settings, live=live, payments=payments, pool_size=2) as adapters:
        yield adapters


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.check:
        return _check_migrations(settings)
    migrations.upgrade(settings.database_url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def _check_migrations(settings: Settings) -> int:
    """A deploy gate: exit 0 only when the database is at head, with one line either way."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are not the answer
    try:
        current, heads = migrations.revisions(settings.database_url)
    except Exception as error:  # any driver's failure to connect or read
        print(f"migrate --check: cannot read the database's revision "
              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
              file=sys.stderr)
        return 1
    head = ", ".join(sorted(heads))
    if current == heads:
        print(f"database is at head ({head})")
        return 0
    at = ", ".join(sorted(current)) or "no revision (empty database)"
    print(f"database is behind head: at {at}, head is {head}; run `ordergraph migrate`",
          file=sys.stderr)
    return 1




def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        async with _tools(settings) as tools:
            return await seed_shop(uow=tools.uow, passwords=password_hasher(), clock=tools.clock,
                                   currency=settings.currency)

    created = asyncio.run(run())
    print("seeded: " + ", ".join(created) if created else "seed: nothing to do")
    return 0


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)

    async def run() -> str:
        async with _tools(settings) as tools:
            clock, hasher = tools.clock, password_hasher()
            promoted = await set_role_by_email(uow=tools.uow(), clock=clock, email=args.email,
                                               role=Role.ADMIN, actor=SYSTEM)
            if promoted:
                return f"{args.email} exists; it is now an ADMIN (password unchanged)"
            await create_user(uow=tools.uow(), passwords=hasher, clock=clock, email=args.email,
                              password=password, name=args.name, role=Role.ADMIN, actor=SYSTEM)
            return f"created ADMIN {args.email}"

    print(asyncio.run(run()))
    return 0


def cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> tuple[SweepReport, DeliveryReport | None]:
        async with _tools(settings, live=True, payments=True) as tools:
            assert tools.gateway is not None
            report = await sweep(uow=tools.uow(), gateways=tools.gateway, clock=tools.clock,
                                 provider_deadline=settings.payment_provider_deadline)
            if tools.mailer is None:  # no SMTP_URL
                return report, None
            # Then the email that is due, the sweep's own (expiries, refunds) included.
            return report, await deliver_mail(uow=tools.uow(), mailer=tools.mailer,
                                              clock=tools.clock)

    report, mail = asyncio.run(run())
    print(f"sweep: {report.expired} expired, {report.paid_at_expiry} paid at expiry, "
          f"{report.abandoned} abandoned checkouts cancelled, {report.refunds_retried} "
          f"refunds sent")
    if report.more_due:
        print("more reservations are due than one pass expires: run it again")
    if mail is None:
        print("mail: none sent (no SMTP_URL: local mail mode, where `serve` delivers to its "
              "own sink)")
    else:
        print(f"mail: {mail.sent} sent, {mail.failed} failed (retried later)")
    errors = report.errors + (mail.errors if mail else [])
    for error in errors:
        print(f"  error: {error}", file=sys.stderr)
    return 1 if errors else 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise SystemExit("passwords do not match")
    return password


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from ordergraph.web import serving

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    if workers > 1 and settings.metrics_port is not None:
        print("ordergraph: configuration error: METRICS_PORT needs one worker: workers cannot "
              "share one metrics port (run one worker per container)", file=sys.stderr)
        return 2
    if workers > 1 and settings.broadcast_url.startswith("memory"):
        log.warning("%d workers with BROADCAST_URL=memory://: live updates will not cross "
                    "workers; use redis://", workers)
    emulator = None
    if settings.local_payments:
        # Local payments mode: the same code path as production, against an emulator.
        emulator = wire_local_stripe(settings, host, port)
    os.environ["HOST"], os.environ["PORT"] = host, str(port)
    try:
        # Our access log middleware writes one line per request; uvicorn's would repeat it.
        # More than one worker: each on a socket of its own, so connections spread evenly.
        serving.run("ordergraph.web.app:serve_app", workers=workers, host=host, port=port,
                    log_config=None, access_log=False, proxy_headers=True,
                    # Behind a load balancer every client would otherwise have its address.
                    forwarded_allow_ips=list(settings.trusted_proxies),
                    timeout_graceful_shutdown=int(settings.shutdown_timeout.total_seconds()),
                    # Live messages are a few hundred bytes: per-message deflate saves little
                    # on the wire and costs ~47 KiB of zlib state per connection and ~10 %
                    # of a fan-out's CPU (bench/RESULTS.md).
                    ws_per_message_deflate=False)
    finally:
        if emulator is not None:
            emulator.stop()
    return 0


def cmd_healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when this instance answers /healthz (the container's HEALTHCHECK)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.port}/healthz",
                                    timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordergraph", description="Transactional order and payment service (GraphQL).")
    parser.add_argument("--version", action="version", version=f"ordergraph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply database migrations (Alembic)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--check", action="store_true",
                         help="change nothing; exit 1 unless the database is at head")
    migrate.set_defaults(run=cmd_migrate, database_only=True)

    seed = commands.add_parser("seed", help="add the demo users and products (idempotent)")
    seed.set_defaults(run=cmd_seed, database_only=True)

    serve = commands.add_parser("serve", help="serve the API, GraphiQL and the web client")
    serve.add_argument("--host", help="default HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default PORT or 8000")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    serve.set_defaults(run=cmd_serve)

    admin = commands.add_parser("create-admin", help="create an ADMIN (or promote a user)")
    admin.add_argument("email")
    admin.add_argument("--name")
    admin.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input")
    admin.set_defaults(run=cmd_create_admin, database_only=True)
    health = commands.add_parser("healthcheck", help="exit 0 if this instance is up")
    health.set_defaults(run=cmd_healthcheck)

    sweeper = commands.add_parser(
        "sweep", help="one pass: expire unpaid reservations, clean up, retry refunds, send "
                      "due email (cron)")
    sweeper.set_defaults(run=cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # A release step (migrate, seed) or a one-off create-admin runs without the app's
        # secrets; serve and sweep refuse to start without them.
        settings = Settings.from_env(database_only=getattr(args, "database_only", False))
    except SettingsError as error:
        print(f"ordergraph: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    try:
        return int(args.run(settings, args))
    except DomainError as error:
        print(f"ordergraph: {error.code}: {error.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
