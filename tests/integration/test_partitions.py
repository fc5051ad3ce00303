"""The audit log and the visits, partitioned by month: the chain runs on across months and ``rcc audit verify``
walks it; rows of a month nobody made a partition for wait in the default partition and ``rcc maintain`` moves them
into their own (the chain unbroken); one open visit per member holds across two months' partitions, under
concurrency too; the append-only triggers guard every partition; maintenance is safe to repeat. In a database of
this module's own, so moving rows out of the default partition touches no other test's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.audit import DB_ROLE, handlers
from services.audit.commands import AppendToAuditLog
from services.audit.models import PARTITIONED as AUDIT_LOG
from services.audit.models import AuditUnitOfWork, Base
from services.checkin.models import PARTITIONED as VISITS
from services.cli import audit_verify, maintain_partitions
from services.registry import SCHEMAS
from shared import partitions
from shared.clock import SystemClock
from shared.db import create_engine, make_connector
from shared.events import ReceivedEvent, canonical_json, envelope
from shared.migrate import upgrade
from shared.settings import Settings
from tests.conftest import QUEUES
from tests.support.broker import delete_prefixed
from tests.support.databases import create_database, database_url, drop_database, migrated_settings
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

NOVEMBER = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
# A month no migration or maintenance run created a partition for: its rows wait in the default partition.
LONG_AGO = datetime(2020, 2, 14, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def settings() -> AsyncIterator[Settings]:
    name, settings = await migrated_settings()
    yield settings
    await delete_prefixed(settings, QUEUES)
    await drop_database(name)


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The audit service's own role: INSERT and SELECT on the log's parent table only."""
    engine = create_engine(settings, service="audit", role=DB_ROLE)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    yield conn
    await conn.close()


def event(at: datetime) -> ReceivedEvent:
    ce = envelope(
        event_id=uuid.uuid4(),
        source="/rcc/test",
        type_="test.happened",
        time=at,
        subject="s",
        site_id="part-site",
        data={},
        dataschema="/rcc/schemas/test.happened/v1",
        classification="internal",
        sequence=1,
    )
    return ReceivedEvent.from_body(canonical_json(ce))


async def append(engine: AsyncEngine, batch: list[ReceivedEvent]) -> int:
    async with AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
        result = await handlers.append_to_audit_log(AppendToAuditLog(batch), uow=uow, clock=SystemClock())
        await uow.commit()
    return result.appended


async def where(db: asyncpg.Connection, event_id: uuid.UUID) -> str:
    name: str = await db.fetchval("SELECT tableoid::regclass::text FROM audit.audit_log WHERE event_id = $1", event_id)
    return name


async def test_the_chain_runs_across_months_and_verify_walks_it(
    settings: Settings, writer: AsyncEngine, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    november, december, stranded = event(NOVEMBER), event(DECEMBER), event(LONG_AGO)
    for month in (NOVEMBER, DECEMBER):  # the partitions exist whatever month the test runs in
        await maintain_months(settings, month)
    assert await append(writer, [november, december]) == 2
    assert await append(writer, [stranded]) == 1
    # A redelivery of each, in a batch of its own and mixed with new events: the log keeps one copy.
    assert await append(writer, [december, november, stranded]) == 0

    assert await where(db, november.id) == "audit.audit_log_2026_11"
    assert await where(db, december.id) == "audit.audit_log_2026_12"
    assert await where(db, stranded.id) == "audit.audit_log_default"
    assert await audit_verify(settings) == 0
    verdict = capsys.readouterr().out
    assert '"ok":true' in verdict and '"entries":3' in verdict, verdict

    # The database refuses a second copy of an event even past the handler: (event_id, time) is a key.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO audit.audit_log SELECT sequence + 100, event_id, type, source, site_id, subject, time,"
            " recorded_at, body, prev_hash || 'x', hash FROM audit.audit_log WHERE event_id = $1",
            december.id,
        )

    await maintain_partitions(settings, months_ahead=1)
    assert await where(db, stranded.id) == "audit.audit_log_2020_02"
    assert await db.fetchval("SELECT count(*) FROM audit.audit_log_default") == 0
    assert await audit_verify(settings) == 0
    assert '"ok":true' in capsys.readouterr().out

    # Append-only in every partition, the one made by the move included, and for the table's owner too.
    for partition in ("audit.audit_log_2026_12", "audit.audit_log_2020_02"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(f"UPDATE {partition} SET body = body || ' '")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(f"DELETE FROM {partition}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute("TRUNCATE audit.audit_log")


async def maintain_months(settings: Settings, month: datetime) -> None:
    engine = create_async_engine(settings.database_url)
    try:
        for table in (AUDIT_LOG, VISITS):
            async with engine.begin() as conn:
                await partitions.maintain(conn, table, today=month.date(), months_ahead=0)
    finally:
        await engine.dispose()


async def start_visit(db: asyncpg.Connection, member: uuid.UUID, at: datetime) -> uuid.UUID | None:
    visit_id: uuid.UUID | None = await db.fetchval(
        "INSERT INTO checkin.visits (visit_id, site_id, member_id, purpose, checked_in_at)"
        " VALUES ($1, 'part-site', $2, 'drop_in', $3) RETURNING visit_id",
        uuid.uuid4(),
        member,
        at,
    )
    return visit_id


async def test_one_open_visit_per_member_across_months(settings: Settings, db: asyncpg.Connection) -> None:
    for month in (NOVEMBER, DECEMBER):
        await maintain_months(settings, month)
    member = uuid.uuid4()
    first = await start_visit(db, member, NOVEMBER)
    assert first is not None
    # The 31st's evening visit is still open on the 1st: a second one is not started, in another partition.
    assert await start_visit(db, member, DECEMBER) is None
    assert await start_visit(db, member, LONG_AGO) is None
    # Anonymous walk-ins (no member) are never held back.
    for at in (NOVEMBER, DECEMBER, DECEMBER):
        assert await db.fetchval(
            "INSERT INTO checkin.visits (visit_id, site_id, purpose, checked_in_at)"
            " VALUES ($1, 'part-site', 'drop_in', $2) RETURNING visit_id",
            uuid.uuid4(),
            at,
        )

    await db.execute("UPDATE checkin.visits SET checked_out_at = $2 WHERE visit_id = $1", first, DECEMBER)
    second = await start_visit(db, member, DECEMBER)
    assert second is not None

    # An open visit that waited in the default partition keeps its member's claim when maintenance moves it, and
    # gives it up at check-out.
    waiting = uuid.uuid4()
    stranded = await start_visit(db, waiting, datetime(2019, 7, 4, 12, 0, tzinfo=UTC))
    assert await db.fetchval("SELECT tableoid::regclass::text FROM checkin.visits WHERE visit_id = $1", stranded) == (
        "checkin.visits_default"
    )
    await maintain_months(settings, DECEMBER)
    assert await db.fetchval("SELECT tableoid::regclass::text FROM checkin.visits WHERE visit_id = $1", stranded) == (
        "checkin.visits_2019_07"
    )
    assert await start_visit(db, waiting, DECEMBER) is None
    await db.execute("UPDATE checkin.visits SET checked_out_at = $2 WHERE visit_id = $1", stranded, DECEMBER)
    assert await start_visit(db, waiting, DECEMBER) is not None
    partitions_of = await db.fetch(
        "SELECT tableoid::regclass::text AS partition FROM checkin.visits WHERE member_id = $1 ORDER BY checked_in_at",
        member,
    )
    assert [row["partition"] for row in partitions_of] == ["checkin.visits_2026_11", "checkin.visits_2026_12"]


async def test_two_check_ins_of_one_member_at_once_in_two_months_start_one_visit(
    settings: Settings, db: asyncpg.Connection
) -> None:
    for month in (NOVEMBER, DECEMBER):
        await maintain_months(settings, month)
    member = uuid.uuid4()
    other = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        transaction = db.transaction()
        await transaction.start()
        assert await start_visit(db, member, NOVEMBER) is not None
        # The second waits for the first's claim on the member to commit or roll back; it cannot finish before.
        waiting = asyncio.create_task(start_visit(other, member, DECEMBER))
        pid = other.get_server_pid()

        async def blocked() -> bool:
            waits = await db.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", pid)
            return bool(waits)

        await eventually(blocked)
        assert not waiting.done()
        await transaction.commit()
        assert await waiting is None
    finally:
        await other.close()
    open_visits = await db.fetchval(
        "SELECT count(*) FROM checkin.visits WHERE member_id = $1 AND checked_out_at IS NULL", member
    )
    assert open_visits == 1


async def test_maintenance_creates_the_months_ahead_and_is_safe_to_repeat(
    settings: Settings, db: asyncpg.Connection
) -> None:
    engine = create_async_engine(settings.database_url)
    today = date(2031, 5, 17)
    try:
        async with engine.begin() as conn:
            first = await partitions.maintain(conn, VISITS, today=today, months_ahead=2)
        async with engine.begin() as conn:
            again = await partitions.maintain(conn, VISITS, today=today, months_ahead=2)
    finally:
        await engine.dispose()
    assert first.created == ["visits_2031_05", "visits_2031_06", "visits_2031_07"]
    assert again.created == []
    # The bounds are UTC months: the last minute of June is June's, the first of July is July's.
    for at, partition in (
        (datetime(2031, 6, 30, 23, 59, tzinfo=UTC), "checkin.visits_2031_06"),
        (datetime(2031, 7, 1, 0, 0, tzinfo=UTC), "checkin.visits_2031_07"),
    ):
        visit = await start_visit(db, uuid.uuid4(), at)
        assert (
            await db.fetchval("SELECT tableoid::regclass::text FROM checkin.visits WHERE visit_id = $1", visit)
            == partition
        )


async def test_an_existing_log_and_visits_are_carried_into_the_partitions_and_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The upgrade of a database that holds entries and visits (audit 0002 → 0003, checkin 0001 → 0002): every row
    kept, each in its month, the chain still verifies, an open visit still holds its member; the downgrade gives
    the plain tables back with the same rows."""
    name = await create_database()
    url = database_url(name)
    settings = Settings(database_url=url)
    before = {"checkin": "0001", "audit": "0002"}

    def migrate_to(revisions: dict[str, str]) -> None:
        for schema in SCHEMAS:
            upgrade(url, schema.name, schema.migrations, revisions.get(schema.name, "head"))

    def downgrade_to(revisions: dict[str, str]) -> None:
        for schema in SCHEMAS:
            if schema.name in revisions:
                config = Config()
                config.set_main_option("script_location", str(schema.migrations))
                config.attributes.update(database_url=url, schema=schema.name)
                command.downgrade(config, revisions[schema.name])

    try:
        await asyncio.to_thread(migrate_to, before)
        engine = create_engine(settings, service="audit", role=DB_ROLE)
        try:
            assert await append(engine, [event(NOVEMBER), event(DECEMBER), event(LONG_AGO)]) == 3
        finally:
            await engine.dispose()
        db = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            member = uuid.uuid4()
            assert await start_visit(db, member, NOVEMBER) is not None
            closed = await start_visit(db, uuid.uuid4(), DECEMBER)
            await db.execute("UPDATE checkin.visits SET checked_out_at = $2 WHERE visit_id = $1", closed, DECEMBER)
            snapshot = {
                table: await db.fetch(f"SELECT * FROM {table} ORDER BY 1")
                for table in ("audit.audit_log", "checkin.visits")
            }

            # To the partitioning revisions themselves: later ones may add columns the snapshot has not.
            await asyncio.to_thread(migrate_to, {"checkin": "0002", "audit": "0003"})
            for table, rows in snapshot.items():
                assert await db.fetch(f"SELECT * FROM {table} ORDER BY 1") == rows
            months = await db.fetch("SELECT tableoid::regclass::text AS p FROM audit.audit_log ORDER BY sequence")
            assert [r["p"] for r in months] == [
                "audit.audit_log_2026_11",
                "audit.audit_log_2026_12",
                "audit.audit_log_2020_02",
            ]
            assert await audit_verify(settings) == 0
            assert '"ok":true' in capsys.readouterr().out
            assert await db.fetchval("SELECT visit_id FROM checkin.open_visits WHERE member_id = $1", member)
            assert await start_visit(db, member, DECEMBER) is None

            await asyncio.to_thread(downgrade_to, before)
            assert not await db.fetchval("SELECT count(*) FROM pg_partitioned_table")
            for table, rows in snapshot.items():
                assert await db.fetch(f"SELECT * FROM {table} ORDER BY 1") == rows
            assert await audit_verify(settings) == 0
            assert '"ok":true' in capsys.readouterr().out
        finally:
            await db.close()
    finally:
        await drop_database(name)


async def test_maintenance_does_not_queue_behind_a_long_transaction(
    settings: Settings, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report reading the audit log holds a lock that creating its partition must wait for: maintenance gives up
    on that table after its lock timeout (instead of queueing every append behind it), maintains the visits, and
    exits 1; the next run creates what is missing."""
    async with db.transaction():
        await db.execute("SELECT count(*) FROM audit.audit_log")
        assert await maintain_partitions(settings, months_ahead=9) == 1
    out, err = capsys.readouterr()
    assert "audit.audit_log: not maintained" in err and "lock timeout" in err
    assert "checkin.visits: created" in out
    assert await maintain_partitions(settings, months_ahead=9) == 0
    assert "audit.audit_log: created" in capsys.readouterr().out


async def test_a_tampered_entry_is_found_in_any_month(
    settings: Settings, writer: AsyncEngine, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """Last in this module, as it breaks the chain of the module's database: an entry of an older month edited
    (its partition's triggers turned off, as someone with the owner's rights could) is found at its sequence,
    though newer months follow it."""
    await maintain_months(settings, NOVEMBER)
    await maintain_months(settings, DECEMBER)
    older, newer = event(NOVEMBER), event(DECEMBER)
    assert await append(writer, [older, newer]) == 2
    sequence = await db.fetchval("SELECT sequence FROM audit.audit_log WHERE event_id = $1", older.id)
    await db.execute("ALTER TABLE audit.audit_log_2026_11 DISABLE TRIGGER USER")
    await db.execute(
        "UPDATE audit.audit_log_2026_11 SET body = replace(body, 'part-site', 'part-sitf') WHERE event_id = $1",
        older.id,
    )
    await db.execute("ALTER TABLE audit.audit_log_2026_11 ENABLE TRIGGER USER")
    assert await audit_verify(settings) == 1
    assert f'"first_bad_sequence":{sequence}' in capsys.readouterr().out
