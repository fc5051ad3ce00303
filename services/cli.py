"""``rcc``: migrate, serve, administer sites and tokens, run the demo, verify the audit chain, list notify's
delivery log."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aio_pika
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.registry import PAGES, ROOT, SCHEMAS, SERVABLE, SERVICES
from shared import access, errorcatalog, eventloop
from shared.errors import DomainError
from shared.logging import configure_logging, get_logger
from shared.messaging import declare_consumer_queue, declare_exchanges
from shared.migrate import upgrade
from shared.settings import PROCESS_ROLES, Settings


def migrate(settings: Settings) -> None:
    """Database schemas, then the broker topology: declaring every consumer's queue up front means no event is
    unroutable just because its consumer has not started yet."""
    for schema in SCHEMAS:
        upgrade(settings.database_url, schema.name, schema.migrations)
    asyncio.run(declare_topology(settings))


async def declare_topology(settings: Settings) -> None:
    connection = await connect_any(settings.amqp_nodes)
    try:
        channel = await connection.channel()
        await declare_exchanges(channel, settings)
        for service in SERVICES.values():
            if (queue := service.queue()) is not None:
                await declare_consumer_queue(channel, settings, queue[0], queue[1])
    finally:
        await connection.close()


async def connect_any(nodes: Sequence[str]) -> aio_pika.abc.AbstractConnection:
    """A plain connection to the first broker node that answers (a cluster's nodes hold the same topology)."""
    for url in nodes[:-1]:
        try:
            return await aio_pika.connect(url, timeout=10)
        except (OSError, aio_pika.exceptions.AMQPConnectionError):
            continue
    return await aio_pika.connect(nodes[-1], timeout=10)


@contextlib.asynccontextmanager
async def running(settings: Settings, names: Sequence[str]) -> AsyncIterator[dict[str, str]]:
    """Run the named services' apps in this process; yields their base URLs. The pages proxy to the services started
    before them here, and to ``settings``' service URLs for the others."""
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    bound: dict[str, object] = {}
    try:
        for name in names:
            app_settings = settings.model_copy(update=bound) if name == PAGES.name else settings
            runner = web.AppRunner(SERVABLE[name].create_app(app_settings), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, settings.host, settings.port_of(name), reuse_address=True).start()
            host, port = runner.addresses[0][:2]  # the bound port, also when asked for port 0
            urls[name] = f"http://{host}:{port}"
            bound.update({f"{name}_port": port, f"{name}_url": None})
        yield urls
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def serve(settings: Settings, names: Sequence[str]) -> None:
    log = get_logger(component="cli")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, names) as urls:
        # What start-up built (modules, metadata, schemas) lives as long as the process: out of the collector's
        # reach, a full collection under load walks only what requests made (~5 ms instead of ~100 ms).
        gc.collect()
        gc.freeze()
        for name, url in urls.items():
            log.info("serving", service=name, url=url, role=settings.role)
        await stop.wait()
        log.info("stopping")


@contextlib.asynccontextmanager
async def admin_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def site_create(settings: Settings, args: argparse.Namespace) -> None:
    async with admin_engine(settings) as engine, engine.begin() as conn:
        site = await access.create_site(
            conn,
            args.site_id,
            name=args.name,
            capacity=args.capacity,
            timezone=args.timezone,
            closes_at=access.parse_closes_at(args.closes_at),
        )
    print(f"site {site.site_id} created ({site.name}, capacity {site.capacity}, {site.timezone})", file=sys.stderr)


async def site_list(settings: Settings) -> None:
    async with admin_engine(settings) as engine, engine.connect() as conn:
        for site in await access.list_sites(conn):
            print(f"{site.site_id}\t{site.capacity}\t{site.timezone}\tcloses {site.closes_at:%H:%M}\t{site.name}")


async def token_create(settings: Settings, args: argparse.Namespace) -> None:
    member = uuid.UUID(args.member) if args.member else None
    async with admin_engine(settings) as engine, engine.begin() as conn:
        token_id, token = await access.issue_token(
            conn, role=access.Role(args.role), site_id=args.site, member_id=member, label=args.label
        )
    print(f"token {token_id} ({args.role}, site {args.site}); shown once, keep it safe", file=sys.stderr)
    print(token)


async def token_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async with admin_engine(settings) as engine, engine.begin() as conn:
        token_id = await access.revoke_token(conn, args.token)
    print(f"token {token_id} revoked", file=sys.stderr)


async def audit_verify(settings: Settings) -> int:
    from services.audit.handlers import verify_audit_log
    from services.audit.models import AuditUnitOfWork, Base
    from shared.db import make_connector

    async with admin_engine(settings) as engine, AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
        result = await verify_audit_log(uow, 5_000)
    print(result.model_dump_json())
    return 0 if result.ok else 1


async def maintain_partitions(settings: Settings, months_ahead: int) -> int:
    """Monthly partitions of the growing tables, ahead of time (shared/partitions.py), one transaction per table,
    as the schema owner. A table it cannot lock in time (or that fails otherwise) is left for the next run, after
    the others; the exit status says so."""
    import datetime as dt

    from sqlalchemy.exc import DBAPIError

    from services.audit.models import PARTITIONED as AUDIT_LOG
    from services.checkin.models import PARTITIONED as VISITS
    from shared import partitions

    today = dt.datetime.now(dt.UTC).date()
    failed = 0
    async with admin_engine(settings) as engine:
        for table in (AUDIT_LOG, VISITS):
            try:
                async with engine.begin() as conn:
                    report = await partitions.maintain(conn, table, today=today, months_ahead=months_ahead)
            except DBAPIError as exc:
                failed += 1
                print(f"{table.schema}.{table.table}: not maintained, {exc.orig}", file=sys.stderr)
                continue
            created = ", ".join(report.created) or "none"
            print(
                f"{report.table}: created {created}; moved {report.moved_rows} rows out of the default partition;"
                f" {report.default_rows} rows left there"
            )
    return 1 if failed else 0


async def reports_rebuild(settings: Settings) -> int:
    """Drop the report projections and replay the audit log into them, in one transaction, as the admin user."""
    from services.audit.handlers import rebuild_reports
    from services.audit.models import AuditUnitOfWork, Base
    from services.audit.settings import AuditSettings
    from shared.db import make_connector

    async with admin_engine(settings) as engine, AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
        result = await rebuild_reports(uow, AuditSettings.of(settings).rebuild_chunk_rows)
        await uow.commit()
    print(result.model_dump_json())
    print(
        f"replayed {result.events} audit entries ({result.projected} projected, {result.skipped} skipped)",
        file=sys.stderr,
    )
    return 0


async def notify_outbox(settings: Settings, *, site: str | None = None, limit: int = 20) -> list[str]:
    """The newest messages of notify's delivery log, one line each: ids, purpose, status, attempts, times. No
    address and no text (those are not in the log), and never the secrets a pending message's links carry."""
    async with admin_engine(settings) as engine, engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT created_at, delivery_id, member_id, site_id, purpose, status, attempts, finished_at, last_error"
                " FROM notify.deliveries WHERE (CAST(:site AS text) IS NULL OR site_id = :site)"
                " ORDER BY created_at DESC, delivery_id LIMIT :limit"
            ),
            {"site": site, "limit": limit},
        )
        lines = []
        for row in rows:
            done = f"{row.finished_at:%H:%M:%S}" if row.finished_at else "-"
            lines.append(
                f"{row.created_at:%Y-%m-%d %H:%M:%S}  {str(row.delivery_id)[:8]}  member {str(row.member_id)[:8]}"
                f"  {row.site_id:<14} {row.purpose:<16} {row.status:<8} attempts {row.attempts}  done {done}"
                + (f"  ({row.last_error})" if row.last_error else "")
            )
    return lines


def api_documents() -> dict[str, dict[str, Any]]:
    """Every generated interface document, by its path under docs/."""
    import importlib

    from shared.contracts.asyncapi import build_asyncapi

    receivers = {name: queue for name, service in SERVICES.items() if (queue := service.queue()) is not None}
    documents = {"asyncapi.json": build_asyncapi(receivers)}
    for name, service in SERVICES.items():
        documents[f"openapi/{name}.json"] = importlib.import_module(f"{service.package}.views").api.openapi()
    return documents


def write_docs(out: Path) -> None:
    for relative, document in api_documents().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    errors = out / "errors.md"
    errors.write_text(errorcatalog.document(ROOT))
    print(f"wrote {errors}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rcc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations of every schema (safe to repeat)")
    serve_cmd = commands.add_parser("serve", help="run one service (or the pages), or all of them in one process")
    serve_cmd.add_argument("service", choices=[*SERVABLE, "all"])
    serve_cmd.add_argument(
        "--role",
        choices=PROCESS_ROLES,
        help="what this process runs: web (HTTP only), relay (the outbox relay), consumers, scheduler (periodic"
        " jobs), or all (default: RCC_ROLE, else all); any number of replicas of each may run",
    )

    site = commands.add_parser("site", help="sites (centers)").add_subparsers(dest="site_command", required=True)
    create = site.add_parser("create", help="add a site")
    create.add_argument("site_id")
    create.add_argument("--name", required=True)
    create.add_argument("--capacity", type=int, required=True)
    create.add_argument("--timezone", required=True, help="IANA name, e.g. America/Chicago")
    create.add_argument("--closes-at", default="21:00", help="local closing time HH:MM (open visits close then)")
    site.add_parser("list", help="list sites")

    token = commands.add_parser("token", help="bearer tokens").add_subparsers(dest="token_command", required=True)
    token_new = token.add_parser("create", help="issue a token; prints it alone on stdout, once")
    token_new.add_argument("--role", required=True, choices=[r.value for r in access.Role])
    token_new.add_argument("--site", required=True)
    token_new.add_argument("--member", help="the member id a volunteer token acts as")
    token_new.add_argument("--label", help="what the token is for, e.g. 'front desk tablet'")
    token_revoke_cmd = token.add_parser("revoke", help="revoke a token by its id (or the token itself)")
    token_revoke_cmd.add_argument("token")

    maintain = commands.add_parser(
        "maintain", help="create the audit log's and the visits' monthly partitions ahead (run daily; safe to repeat)"
    )
    maintain.add_argument("--months-ahead", type=int, default=3, help="months after this one to create (default 3)")

    demo = commands.add_parser("demo", help="migrate, create a demo site, check people in, show the audit log")
    demo.add_argument("--exit", action="store_true", help="stop after the walkthrough instead of serving")

    docs = commands.add_parser("docs", help="write docs/openapi/<service>.json, docs/asyncapi.json and docs/errors.md")
    docs.add_argument("--out", default=str(ROOT / "docs"))

    audit = commands.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="verify the hash chain; exits 1 when an entry was tampered with")

    notify = commands.add_parser("notify", help="the notify service").add_subparsers(
        dest="notify_command", required=True
    )
    outbox = notify.add_parser("outbox", help="the newest messages of the delivery log (no addresses, no text)")
    outbox.add_argument("--site", help="one site's messages only")
    outbox.add_argument("--limit", type=int, default=20)

    reports = commands.add_parser("reports", help="the funders' reports (projections of the audit log)")
    reports_commands = reports.add_subparsers(dest="reports_command", required=True)
    reports_commands.add_parser(
        "rebuild", help="drop the report projections and replay the whole audit log into them (one transaction)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        sys.exit(_run(args, settings))
    except DomainError as exc:
        print(f"rcc: {exc.detail} ({exc.code})", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "migrate":
            migrate(settings)
            print("migrations applied", file=sys.stderr)
        case "serve":
            if args.role is not None:
                settings = settings.model_copy(update={"role": args.role})
            names = list(SERVABLE) if args.service == "all" else [args.service]
            if not settings.runs("web"):  # the pages are web only: a relay or consumer box serves no pages
                names = [name for name in names if name != PAGES.name] or names
            eventloop.run(serve(settings, names))
        case "site" if args.site_command == "create":
            asyncio.run(site_create(settings, args))
        case "site":
            asyncio.run(site_list(settings))
        case "token" if args.token_command == "create":
            asyncio.run(token_create(settings, args))
        case "token":
            asyncio.run(token_revoke(settings, args))
        case "demo":
            from services.demo import run_demo

            migrate(settings)
            return asyncio.run(run_demo(settings, keep_serving=not args.exit))
        case "audit":
            return asyncio.run(audit_verify(settings))
        case "maintain":
            return asyncio.run(maintain_partitions(settings, args.months_ahead))
        case "reports":
            return asyncio.run(reports_rebuild(settings))
        case "notify":
            for line in asyncio.run(notify_outbox(settings, site=args.site, limit=args.limit)):
                print(line)
        case "docs":
            write_docs(Path(args.out))
    return 0


if __name__ == "__main__":
    main()
