"""The projections under the cases the generated month rarely or never produces: every arrival order of the same
facts giving the same figures, a check-in restated with another member or day (the rare recount path), hours
approved, corrected and rejected in any order, stipend events by name, malformed event data that must not stop the
audit log, and redelivered events counted once. Appended through the audit append handler, read through the report
handlers, as the service does."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.audit import DB_ROLE, handlers
from services.audit.commands import AppendToAuditLog, RequestReport
from services.audit.models import AuditUnitOfWork, Base, audit_log
from services.audit.reports.queries import ReportScope
from shared import access
from shared.clock import FixedClock
from shared.db import create_engine, make_connector
from shared.events import ReceivedEvent, canonical_json, envelope
from shared.settings import Settings

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in Chicago
CLOCK = FixedClock(datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, service="audit", role=DB_ROLE)
    yield engine
    await engine.dispose()


@pytest.fixture
async def site_id(settings: Settings) -> str:
    site_id = f"proj-{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(settings.database_url)
    async with admin.begin() as conn:
        await access.create_site(
            conn,
            site_id,
            name="Center",
            capacity=30,
            timezone="America/Chicago",
            closes_at=access.parse_closes_at("21:00"),
        )
    await admin.dispose()
    return site_id


def event(type_: str, site_id: str, at: datetime, **data: Any) -> ReceivedEvent:
    ce = envelope(
        event_id=uuid.uuid4(),
        source="/rcc/test",
        type_=type_,
        time=at,
        subject="s",
        site_id=site_id,
        data=data,
        dataschema=f"/rcc/schemas/{type_}/v1",
        classification="internal",
        sequence=1,
    )
    return ReceivedEvent.from_body(canonical_json(ce))


def check_in(
    site_id: str,
    visit: uuid.UUID,
    member: uuid.UUID | None,
    at: datetime,
    *,
    fact_at: datetime | None = None,
    purpose: str = "drop_in",
) -> ReceivedEvent:
    return event(
        "checkin.visitor_checked_in",
        site_id,
        fact_at or at,
        visit_id=str(visit),
        member_id=str(member) if member else None,
        anonymous=member is None,
        purpose=purpose,
        support_type="affiliational",
        ref=None,
        checked_in_at=at.isoformat(),
    )


def check_out(site_id: str, visit: uuid.UUID, member: uuid.UUID | None, at: datetime, out: datetime) -> ReceivedEvent:
    return event(
        "checkin.visitor_checked_out",
        site_id,
        out,
        visit_id=str(visit),
        member_id=str(member) if member else None,
        purpose="drop_in",
        ref=None,
        checked_in_at=at.isoformat(),
        checked_out_at=out.isoformat(),
        minutes=int((out - at).total_seconds() // 60),
        closed_by="kiosk",
    )


def decision(
    site_id: str, hours: uuid.UUID, member: uuid.UUID, approved: bool, minutes: int, at: datetime
) -> ReceivedEvent:
    type_ = "volunteering.hours_approved" if approved else "volunteering.hours_rejected"
    stamp = "approved_at" if approved else "rejected_at"
    return event(
        type_,
        site_id,
        at,
        hours_id=str(hours),
        shift_id=str(uuid.uuid4()),
        member_id=str(member),
        role_id="front_desk",
        shift_starts_at=T.isoformat(),
        minutes=minutes,
        **{stamp: at.isoformat()},
    )


async def append(engine: AsyncEngine, *batches: list[ReceivedEvent]) -> None:
    for batch in batches:
        async with AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
            await handlers.append_to_audit_log(AppendToAuditLog(batch), uow=uow, clock=CLOCK)
            await uow.commit()


async def summary(engine: AsyncEngine, site_id: str, first: date = DAY, last: date = DAY) -> dict[str, Any]:
    async with engine.connect() as conn:
        site = await access.get_site(conn, site_id)
    cmd = RequestReport("summary", ReportScope.of_site(site), first, last, "json", None, "token:test", site_id)
    async with AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
        report = await handlers.request_summary(cmd, uow=uow, clock=CLOCK)
    return report.model_dump(mode="json")


async def daily(engine: AsyncEngine, site_id: str, first: date, last: date) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        site = await access.get_site(conn, site_id)
    cmd = RequestReport("daily", ReportScope.of_site(site), first, last, "json", None, "token:test", site_id)
    async with AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
        report = await handlers.request_daily(cmd, uow=uow, clock=CLOCK)
    return report.model_dump(mode="json")["days"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
async def test_any_arrival_order_gives_the_same_figures(
    engine: AsyncEngine, settings: Settings, order: tuple[int, ...]
) -> None:
    site_id = f"perm-{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(settings.database_url)
    async with admin.begin() as conn:
        await access.create_site(
            conn,
            site_id,
            name="Center",
            capacity=30,
            timezone="America/Chicago",
            closes_at=access.parse_closes_at("21:00"),
        )
    await admin.dispose()
    member = uuid.uuid4()
    one, two = uuid.uuid4(), uuid.uuid4()
    facts = [
        check_in(site_id, one, member, T),
        check_out(site_id, one, member, T, T + timedelta(hours=2)),
        check_in(site_id, two, None, T + timedelta(hours=1)),
        check_out(site_id, two, None, T + timedelta(hours=1), T + timedelta(hours=3)),
    ]
    await append(engine, *([facts[i]] for i in order))
    figures = await summary(engine, site_id)
    assert (
        figures["visits"],
        figures["anonymous_visits"],
        figures["unduplicated_members"],
        figures["new_members"],
        figures["peak_occupancy"],
    ) == (2, 1, 1, 1, 2)


async def test_a_check_in_restated_with_another_member_and_day_moves_every_count(
    engine: AsyncEngine, site_id: str
) -> None:
    first_member, second_member = uuid.uuid4(), uuid.uuid4()
    visit = uuid.uuid4()
    await append(engine, [check_in(site_id, visit, first_member, T)])
    before = await summary(engine, site_id)
    assert (before["visits"], before["unduplicated_members"], before["new_members"]) == (1, 1, 1)

    # The same visit told again, later, as another member's on the next day: the later fact wins everywhere.
    moved = T + timedelta(days=1)
    await append(
        engine, [check_in(site_id, visit, second_member, moved, fact_at=T + timedelta(days=2), purpose="education")]
    )
    on_first_day = await summary(engine, site_id)
    on_next_day = await summary(engine, site_id, DAY + timedelta(days=1), DAY + timedelta(days=1))
    assert (on_first_day["visits"], on_first_day["unduplicated_members"], on_first_day["new_members"]) == (0, 0, 0)
    assert (on_next_day["visits"], on_next_day["unduplicated_members"], on_next_day["new_members"]) == (1, 1, 1)
    assert on_next_day["visits_by_purpose"]["education"] == 1
    days = await daily(engine, site_id, DAY, DAY + timedelta(days=1))
    assert [(d["visits"], d["unduplicated_members"], d["new_members"]) for d in days] == [(0, 0, 0), (1, 1, 1)]

    # An older restatement changes nothing.
    await append(engine, [check_in(site_id, visit, first_member, T, fact_at=T + timedelta(minutes=5))])
    assert await summary(engine, site_id, DAY + timedelta(days=1), DAY + timedelta(days=1)) == on_next_day


async def test_first_visits_follow_the_earliest_day_whatever_arrives_first(engine: AsyncEngine, site_id: str) -> None:
    member = uuid.uuid4()
    later, earlier = uuid.uuid4(), uuid.uuid4()
    await append(engine, [check_in(site_id, later, member, T + timedelta(days=5))])
    assert (await summary(engine, site_id, DAY + timedelta(days=5), DAY + timedelta(days=5)))["new_members"] == 1
    await append(engine, [check_in(site_id, earlier, member, T)])
    second = await summary(engine, site_id, DAY + timedelta(days=5), DAY + timedelta(days=5))
    assert (second["new_members"], second["returning_members"]) == (0, 1)
    whole = await summary(engine, site_id, DAY, DAY + timedelta(days=5))
    assert (whole["unduplicated_members"], whole["new_members"], whole["visits"]) == (1, 1, 2)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
async def test_the_latest_decision_on_hours_counts_once(
    engine: AsyncEngine, site_id: str, order: tuple[int, ...]
) -> None:
    member, hours = uuid.uuid4(), uuid.uuid4()
    decisions = [
        decision(site_id, hours, member, True, 240, T + timedelta(days=1)),
        decision(site_id, hours, member, True, 210, T + timedelta(days=2)),  # corrected, approved again
        decision(site_id, hours, member, False, 210, T + timedelta(days=3)),  # then rejected after all
    ]
    await append(engine, *([decisions[i]] for i in order))
    figures = await summary(engine, site_id)
    assert (figures["volunteer_hours_approved"], figures["volunteers_active"]) == ("0.00", 0)
    # An appeal: approved once more, latest of all.
    await append(engine, [decision(site_id, hours, member, True, 200, T + timedelta(days=4))])
    figures = await summary(engine, site_id)
    assert (figures["volunteer_hours_approved"], figures["volunteer_hours_by_role"], figures["volunteers_active"]) == (
        "3.33",
        {"front_desk": "3.33"},
        1,
    )


async def test_stipend_events_are_summed_by_name_and_local_date(engine: AsyncEngine, site_id: str) -> None:
    late = datetime(2026, 3, 11, 4, 30, tzinfo=UTC)  # 23:30 on March 10 in Chicago
    entry = uuid.uuid4()
    await append(
        engine,
        [
            event(
                "volunteering.stipend_accrued",
                site_id,
                late,
                entry_id=str(entry),
                member_id=str(uuid.uuid4()),
                period="2026-03",
                amount_cents=5000,
                over_cap_cents=0,
                minutes=300,
            ),
            event(
                "volunteering.stipend_reversed",
                site_id,
                late,
                entry_id=str(uuid.uuid4()),
                reverses_entry_id=str(entry),
                member_id=str(uuid.uuid4()),
                period="2026-03",
                amount_cents=1200,
            ),
            event(
                "volunteering.stipend_paid",
                site_id,
                late,
                payout_id=str(uuid.uuid4()),
                member_id=str(uuid.uuid4()),
                period="2026-03",
                amount_cents=3800,
                paid_at=late.isoformat(),
            ),
        ],
    )
    figures = await summary(engine, site_id)
    assert (figures["stipends_accrued_cents"], figures["stipends_paid_cents"]) == (3800, 3800)


async def test_malformed_data_is_logged_but_not_projected_and_redeliveries_count_once(
    engine: AsyncEngine, site_id: str, settings: Settings
) -> None:
    good = check_in(site_id, uuid.uuid4(), uuid.uuid4(), T)
    bad = event("checkin.visitor_checked_in", site_id, T, visit_id="not-a-uuid", checked_in_at="yesterday")
    await append(engine, [good, bad], [good], [good, bad])
    figures = await summary(engine, site_id)
    assert figures["visits"] == 1
    admin = create_async_engine(settings.database_url)
    async with admin.connect() as conn:
        logged = await conn.scalar(
            select(func.count()).select_from(audit_log).where(audit_log.c.event_id.in_([good.id, bad.id]))
        )
    assert logged == 2
    await admin.dispose()


async def test_a_visit_open_across_midnight_counts_on_its_check_in_day_and_in_the_next_days_peak(
    engine: AsyncEngine, site_id: str
) -> None:
    night = datetime(2026, 3, 11, 4, 0, tzinfo=UTC)  # 23:00 on March 10 in Chicago
    late_member, early_member = uuid.uuid4(), uuid.uuid4()
    owl, early = uuid.uuid4(), uuid.uuid4()
    await append(
        engine,
        [
            check_in(site_id, owl, late_member, night),
            check_out(site_id, owl, late_member, night, night + timedelta(hours=3)),
            check_in(site_id, early, early_member, night + timedelta(hours=1, minutes=30)),  # 00:30 on March 11
            check_out(site_id, early, early_member, night + timedelta(hours=1, minutes=30), night + timedelta(hours=2)),
        ],
    )
    march_10 = await summary(engine, site_id)
    march_11 = await summary(engine, site_id, DAY + timedelta(days=1), DAY + timedelta(days=1))
    both = await summary(engine, site_id, DAY, DAY + timedelta(days=1))
    assert (march_10["visits"], march_10["peak_occupancy"]) == (1, 1)
    assert (march_11["visits"], march_11["peak_occupancy"]) == (1, 1)  # the owl is not a March 11 visit
    assert (both["visits"], both["peak_occupancy"]) == (2, 2)
