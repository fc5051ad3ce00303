"""Monthly range partitions (PostgreSQL's declarative partitioning) for the tables that grow with a network's
activity: the audit log and the visits. One partition per UTC calendar month, named ``<table>_YYYY_MM``, plus a
``<table>_default`` partition so that no row is ever refused, whatever its month and whether or not anyone created
that month's partition in time.

``rcc maintain`` (a daily CronJob in deploy/k8s; also run right after ``rcc migrate``) creates the coming months
ahead of time. Should rows have landed in the default partition (the job did not run, or an event carries a time
outside every partition), it gives their months partitions of their own and moves the rows there, in one
transaction, without changing them; the hash chain and every reference stay as they were. It runs as the schema
owner: the services' own database roles create no tables (and a service's startup takes no DDL locks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# How long maintenance waits for a table lock before giving up until its next run: it must never queue in front of
# the check-ins (a waiting ACCESS EXCLUSIVE request blocks every statement behind it).
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class MonthlyTable:
    """A table partitioned ``BY RANGE (column)`` on a ``timestamptz`` column, one partition per UTC month."""

    schema: str
    table: str
    column: str

    @property
    def qualified(self) -> str:
        return f'"{self.schema}"."{self.table}"'

    @property
    def default(self) -> str:
        return f"{self.table}_default"

    def partition(self, month: date) -> str:
        return f"{self.table}_{month:%Y_%m}"


@dataclass(slots=True)
class MaintenanceReport:
    table: str
    created: list[str] = field(default_factory=list)
    moved_rows: int = 0
    default_rows: int = 0


def month_of(moment: date | datetime) -> date:
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    return moment.replace(day=1)


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def bounds(month: date) -> tuple[datetime, datetime]:
    """The partition's range: from the month's first instant (UTC) to the next month's."""
    low, high = month_of(month), add_months(month_of(month), 1)
    return (datetime(low.year, low.month, 1, tzinfo=UTC), datetime(high.year, high.month, 1, tzinfo=UTC))


def range_sql(month: date) -> str:
    low, high = bounds(month)
    return f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"


def create_month_sql(table: MonthlyTable, month: date) -> str:
    return (
        f'CREATE TABLE IF NOT EXISTS "{table.schema}"."{table.partition(month)}" PARTITION OF {table.qualified} '
        + range_sql(month)
    )


def create_default_sql(table: MonthlyTable) -> str:
    return f'CREATE TABLE IF NOT EXISTS "{table.schema}"."{table.default}" PARTITION OF {table.qualified} DEFAULT'


def months_between(first: date, last: date) -> list[date]:
    months, month = [], month_of(first)
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def months_with_rows_sql(table: MonthlyTable, relation: str) -> str:
    return (
        f"SELECT DISTINCT (date_trunc('month', {table.column} AT TIME ZONE 'UTC'))::date AS month "
        f'FROM "{table.schema}"."{relation}" ORDER BY month'
    )


async def existing_partitions(conn: AsyncConnection, table: MonthlyTable) -> set[str]:
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": table.qualified},
    )
    return set(rows.scalars())


async def maintain(conn: AsyncConnection, table: MonthlyTable, *, today: date, months_ahead: int) -> MaintenanceReport:
    """Partitions for this month and ``months_ahead`` more, and for every month that has rows in the default
    partition (those rows move into it). Call inside a transaction; it serialises with other runs on the table."""
    report = MaintenanceReport(table=f"{table.schema}.{table.table}")
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"rcc-partitions:{report.table}"}
    )
    existing = await existing_partitions(conn, table)
    if table.default not in existing:
        await conn.execute(text(create_default_sql(table)))
    stranded = [row.month for row in await conn.execute(text(months_with_rows_sql(table, table.default)))]
    wanted = sorted({*months_between(month_of(today), add_months(month_of(today), months_ahead)), *stranded})
    for month in wanted:
        name = table.partition(month)
        if name in existing:
            continue
        if month in stranded:
            report.moved_rows += await _move_out_of_default(conn, table, month)
        else:
            await conn.execute(text(create_month_sql(table, month)))
        report.created.append(name)
    report.default_rows = (await conn.scalar(text(f'SELECT count(*) FROM "{table.schema}"."{table.default}"'))) or 0
    return report


async def _move_out_of_default(conn: AsyncConnection, table: MonthlyTable, month: date) -> int:
    """A month's rows from the default partition into a partition of their own. The rows are moved as they are:
    they leave the default partition with its user triggers off for this transaction only (the audit log's refuse
    every DELETE; this is a move, not an edit), go into a plain table shaped like the parent, which is then attached
    (attaching checks the range, and gives it the parent's indexes, constraints and row triggers)."""
    low, high = bounds(month)
    name, default = f'"{table.schema}"."{table.partition(month)}"', f'"{table.schema}"."{table.default}"'
    await conn.execute(text(f"CREATE TABLE {name} (LIKE {table.qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    await conn.execute(text(f"ALTER TABLE {default} DISABLE TRIGGER USER"))
    moved = await conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default} WHERE {table.column} >= :low AND {table.column} < :high "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"low": low, "high": high},
    )
    await conn.execute(text(f"ALTER TABLE {default} ENABLE TRIGGER USER"))
    await conn.execute(text(f"ALTER TABLE {table.qualified} ATTACH PARTITION {name} {range_sql(month)}"))
    return moved.rowcount


def repartition_by_month(table: MonthlyTable, *, months_ahead: int = 3) -> None:
    """For a migration: turn an existing plain table into one partitioned by month, keeping every row and column.
    The new parent is created beside the old table (``LIKE`` it: the columns whatever migrations added them, their
    defaults, NOT NULL and CHECK constraints), with a partition for every month that has rows, this month and
    ``months_ahead`` more, and the default; the rows are copied, the old table dropped and the new one renamed. The
    caller then adds the keys, indexes, triggers and grants (a key must include the partition column). Rewrites the
    whole table under an exclusive lock: plan the upgrade of a large database (docs/operations.md)."""
    from alembic import op

    new = MonthlyTable(table.schema, f"{table.table}_by_month", table.column)
    op.execute(f"LOCK TABLE {table.qualified} IN ACCESS EXCLUSIVE MODE")
    op.execute(
        f"CREATE TABLE {new.qualified} (LIKE {table.qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        f"PARTITION BY RANGE ({table.column})"
    )
    with_rows = [row.month for row in op.get_bind().execute(text(months_with_rows_sql(table, table.table)))]
    this_month = month_of(datetime.now(UTC))
    for month in sorted({*with_rows, *months_between(this_month, add_months(this_month, months_ahead))}):
        op.execute(
            f'CREATE TABLE "{table.schema}"."{table.partition(month)}" PARTITION OF {new.qualified} {range_sql(month)}'
        )
    op.execute(f'CREATE TABLE "{table.schema}"."{table.default}" PARTITION OF {new.qualified} DEFAULT')
    op.execute(f"INSERT INTO {new.qualified} SELECT * FROM {table.qualified}")
    op.execute(f"DROP TABLE {table.qualified}")
    op.execute(f'ALTER TABLE {new.qualified} RENAME TO "{table.table}"')


def unpartition(table: MonthlyTable) -> None:
    """The inverse of ``repartition_by_month``, for a migration's downgrade: one plain table with the same rows."""
    from alembic import op

    plain = f'"{table.schema}"."{table.table}_plain"'
    op.execute(f"CREATE TABLE {plain} (LIKE {table.qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(f"INSERT INTO {plain} SELECT * FROM {table.qualified}")
    op.execute(f"DROP TABLE {table.qualified}")
    op.execute(f'ALTER TABLE {plain} RENAME TO "{table.table}"')
