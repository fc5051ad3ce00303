"""The projector's SQL: set-based statements where a batch's rows travel as one array per column (unnest), one
statement per table whatever the number of rows."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, cast, delete, func, not_, select, text, true, union_all
from sqlalchemy.dialects.postgresql import ARRAY, BIT, UUID, insert
from sqlalchemy.types import Date, Integer, Text

from services.audit.reports.rules import overlapping
from services.audit.reports.tables import PROJECTION_TABLES, Bits, bits_text, rp_visit
from shared.db import column_values

KEYS: dict[str, tuple[str, ...]] = {
    table.name: tuple(column.name for column in table.primary_key.columns) for table in PROJECTION_TABLES
}


def _element_type(column: Any) -> Any:
    # Bitmaps travel as text ('0101...') and are cast in SQL (see Bits).
    return Text() if isinstance(column.type, Bits) else column.type


def column_arrays(table: Table, rows: Sequence[Any], prefix: str = "a") -> dict[str, list[Any]]:
    """The bind values of ``_source(table, prefix)``: one list per column. Rows are dicts or row dataclasses."""
    as_dicts = [row if isinstance(row, dict) else column_values(row) for row in rows]
    params = {}
    for column in table.columns:
        values = [row[column.name] for row in as_dicts]
        if isinstance(column.type, Bits):
            values = [bits_text(value, column.type.length) for value in values]
        params[f"{prefix}_{column.name}"] = values
    return params


def _source(table: Table, prefix: str = "a") -> tuple[Any, list[Any]]:
    """``unnest(:a_col1, :a_col2, ...) AS src(col1, col2, ...)`` and its columns as the table's types."""
    names = [column.name for column in table.columns]
    arrays = [bindparam(f"{prefix}_{column.name}", type_=ARRAY(_element_type(column))) for column in table.columns]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name=f"{prefix}_src")
    columns = [
        cast(source.c[column.name], BIT(column.type.length)) if isinstance(column.type, Bits) else source.c[column.name]
        for column in table.columns
    ]
    return source, columns


def _same_key(table: Table, source: Any) -> Any:
    return and_(*(table.c[name] == source.c[name] for name in KEYS[table.name]))


def _insert(table: Table, prefix: str = "a") -> Any:
    source, columns = _source(table, prefix)
    return source, insert(table).from_select([c.name for c in table.columns], select(*columns))


@functools.cache
def set_statement(table: Table, how: str) -> Any:
    """INSERT … SELECT FROM unnest(…) ON CONFLICT: ``replace`` the row, ``add`` the values to the counters, or
    ``or`` the bits into the bitmaps."""
    keys = KEYS[table.name]
    _, statement = _insert(table)
    others = [c.name for c in table.columns if c.name not in keys]
    if how == "replace":
        updates = {name: statement.excluded[name] for name in others}
    elif how == "add":
        updates = {name: table.c[name] + statement.excluded[name] for name in others}
    else:
        updates = {name: table.c[name].op("|")(statement.excluded[name]) for name in others}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=updates)


@functools.cache
def insert_new_statement(table: Table) -> Any:
    """Insert the rows whose key is absent; return the stored rows of the keys that were present. The ``stored``
    CTE sees the table as it was before the insert (one snapshot for the whole statement)."""
    source, statement = _insert(table)
    # A key lookup per row of the batch: LIMIT 1 (keys are unique) keeps the planner from flattening the lookup
    # into a hash join that reads the whole table, which grows with the log.
    found = select(table).where(_same_key(table, source)).limit(1).lateral("found")
    stored = select(found).select_from(source).join(found, true()).cte("stored")
    inserted = statement.on_conflict_do_nothing().cte("inserted")
    return select(stored).add_cte(inserted)


@functools.cache
def insert_absent_statement(table: Table) -> Any:
    """Insert rows whose key is absent; return those inserted."""
    _, statement = _insert(table)
    return statement.on_conflict_do_nothing().returning(*(c for c in table.columns if c.name not in KEYS[table.name]))


# Move first visits earlier and give newcomers the next ordinals of their scope, in one statement; returns each
# member's previous first visit (null for a newcomer) and ordinal. The CTEs all see the table as it was before.
MEMBER_FIRST_STATEMENT = text(
    """
    WITH src AS (
        SELECT * FROM unnest(CAST(:scopes AS text[]), CAST(:members AS uuid[]), CAST(:firsts AS date[]))
            AS s(scope, member_id, first_date)
    ), old AS (
        -- A key lookup per member (LIMIT keeps the planner from turning it into a hash join over the whole table,
        -- which grows by a row per member: the ingest would slow down as the network grows).
        SELECT f.scope, f.member_id, f.first_date, f.ordinal
        FROM src CROSS JOIN LATERAL (
            SELECT * FROM audit.rp_member_first f WHERE f.scope = src.scope AND f.member_id = src.member_id LIMIT 1
        ) AS f
    ), top AS (
        SELECT scopes.scope, coalesce(last.ordinal, -1) AS ordinal
        FROM (SELECT DISTINCT scope FROM src) AS scopes LEFT JOIN LATERAL (
            SELECT m.ordinal FROM audit.rp_member_first m WHERE m.scope = scopes.scope ORDER BY m.ordinal DESC LIMIT 1
        ) AS last ON true
    ), fresh AS (
        SELECT src.scope, src.member_id, src.first_date,
               top.ordinal + row_number() OVER (PARTITION BY src.scope ORDER BY src.member_id) AS ordinal
        FROM src JOIN top USING (scope) LEFT JOIN old USING (scope, member_id)
        WHERE old.member_id IS NULL
    ), inserted AS (
        INSERT INTO audit.rp_member_first (scope, member_id, first_date, ordinal)
        SELECT scope, member_id, first_date, ordinal FROM fresh
    ), moved AS (
        UPDATE audit.rp_member_first f SET first_date = earlier.first_date
        FROM (SELECT src.scope, src.member_id, src.first_date FROM src JOIN old USING (scope, member_id)
              WHERE src.first_date < old.first_date) AS earlier
        WHERE f.scope = earlier.scope AND f.member_id = earlier.member_id
    )
    SELECT scope, member_id, first_date AS previous, ordinal FROM old
    UNION ALL
    SELECT scope, member_id, NULL, ordinal FROM fresh
    """
).columns(scope=Text, member_id=UUID(as_uuid=True), previous=Date, ordinal=Integer)


def closed_visits_statement(runs: list[tuple[datetime, datetime]]) -> Any:
    """Closed, checked-in visits open at some instant of the runs of hours: short ones by check-in, long ones
    (few) by their own index."""
    v = rp_visit.c
    closed = and_(v.checked_in, v.checked_out_at > v.checked_in_at)
    columns = (v.visit_id, v.site_id, v.checked_in_at, v.checked_out_at)
    short = select(*columns).where(
        overlapping(v.checked_in_at, v.checked_out_at, runs, short=True), closed, not_(v.spills)
    )
    long = select(*columns).where(v.spills, overlapping(v.checked_in_at, v.checked_out_at, runs, short=False), closed)
    return union_all(short, long)


def uuid_array(name: str, values: list[uuid.UUID]) -> Any:
    return bindparam(name, values, type_=ARRAY(UUID(as_uuid=True)))


def _keyset(*columns: tuple[str, Any], rows: Sequence[tuple[Any, ...]]) -> Any:
    """A set of composite keys as a table ``k`` (unnest of one array per column)."""
    arrays = [
        bindparam(f"k_{name}", [row[i] for row in rows], type_=ARRAY(type_)) for i, (name, type_) in enumerate(columns)
    ]
    return func.unnest(*arrays).table_valued(*(name for name, _ in columns)).render_derived(name="k")


def delete_keys(table: Table, *columns: tuple[str, Any], rows: Sequence[tuple[Any, ...]]) -> Any:
    keys = _keyset(*columns, rows=rows)
    return delete(table).where(*(table.c[name] == keys.c[name] for name, _ in columns))
