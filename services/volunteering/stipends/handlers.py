"""Stipend handlers: plain async functions ``(cmd, *, uow, clock)``; no HTTP, no broker, no commit. They write
through ``uow.stipends`` (typed records in); what a period books comes from volunteering proper's approved hours
(``uow.hours.unbooked_approved``), and the rules are in ``domain``."""

from __future__ import annotations

import uuid
import zoneinfo

from services.volunteering.domain import local_date
from services.volunteering.models import VolunteeringUnitOfWork
from services.volunteering.stipends import domain
from services.volunteering.stipends.commands import (
    CloseStipendPeriod,
    MarkPayoutPaid,
    PaymentOut,
    PeriodClosedOut,
    ReversalOut,
    ReverseStipendEntry,
    SetStipendPolicy,
    StipendPolicyOut,
)
from services.volunteering.stipends.models import BookedHours, NewEntry, NewPayout, PeriodTotals
from shared.clock import Clock
from shared.contracts.volunteering import (
    StipendAccrued,
    StipendPaid,
    StipendPeriodClosed,
    StipendPolicyChanged,
    StipendReversed,
    StipendRoleRate,
)
from shared.errors import Conflict, InvalidInput, NotFound


async def set_stipend_policy(cmd: SetStipendPolicy, *, uow: VolunteeringUnitOfWork, clock: Clock) -> StipendPolicyOut:
    """A new version of the site's policy; a version saying what the latest one from the same date says already
    is not made twice (so a repeated PUT changes nothing)."""
    now = clock.now()
    site_id = cmd.actor.site_id
    await uow.stipends.lock_site(site_id)  # a close reads the policies under the same lock
    domain.check_effective_from(cmd.effective_from, await uow.stipends.last_closed(site_id))
    role_ids = [role_id for role_id, _, _ in cmd.role_rates]
    unknown = set(role_ids) - await uow.people.known_role_ids(site_id, role_ids)
    if unknown:
        raise InvalidInput("Create these roles first.", code="unknown_role", roles=sorted(unknown))
    proposed = domain.Policy(
        policy_id=uuid.uuid4(),
        version=0,
        effective_from=cmd.effective_from,
        hourly_rate_cents=cmd.hourly_rate_cents,
        per_shift_cents=cmd.per_shift_cents,
        monthly_cap_cents=cmd.monthly_cap_cents,
        yearly_cap_cents=cmd.yearly_cap_cents,
        tax_threshold_cents=cmd.tax_threshold_cents,
        org_monthly_cap_cents=cmd.org_monthly_cap_cents,
        role_rates=tuple(domain.RoleRate(*rate) for rate in cmd.role_rates),
    )
    same_day = [p for p in await uow.stipends.policies(site_id) if p.effective_from == cmd.effective_from]
    if same_day:
        latest = max(same_day, key=lambda p: p.version)
        if latest.same_terms(proposed):
            return StipendPolicyOut.of(latest)
    await uow.stipends.add_policy(site_id, proposed, now, cmd.actor.actor_id)
    uow.emit(
        StipendPolicyChanged(
            policy_id=proposed.policy_id,
            effective_from=cmd.effective_from,
            hourly_rate_cents=cmd.hourly_rate_cents,
            per_shift_cents=cmd.per_shift_cents,
            role_rates=[
                StipendRoleRate(
                    role_id=r.role_id, hourly_rate_cents=r.hourly_rate_cents, per_shift_cents=r.per_shift_cents
                )
                for r in proposed.role_rates
            ],
            monthly_cap_cents=cmd.monthly_cap_cents,
            yearly_cap_cents=cmd.yearly_cap_cents,
            tax_threshold_cents=cmd.tax_threshold_cents,
            org_monthly_cap_cents=cmd.org_monthly_cap_cents,
        ),
        subject=proposed.policy_id,
        site_id=site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return StipendPolicyOut.of(proposed)


async def close_stipend_period(
    cmd: CloseStipendPeriod, *, uow: VolunteeringUnitOfWork, clock: Clock
) -> PeriodClosedOut:
    """Book the period: one accrual per eligible volunteer, one adjustment per late hours record, caps applied, a
    payout per volunteer, every entry with its event. Closes of one site run one at a time (an advisory lock, then
    the period's row lock), so a close repeated or racing with itself books once and answers with the same totals."""
    now = clock.now()
    site_id = cmd.actor.site_id
    zone = zoneinfo.ZoneInfo(cmd.timezone)
    period = domain.Period.parse(cmd.period)
    await uow.stipends.lock_site(site_id)
    row = await uow.stipends.lock_period(site_id, str(period), now)
    if row.status == "closed":
        return PeriodClosedOut.model_validate(row, from_attributes=True)
    policies = await uow.stipends.policies(site_id)
    domain.check_can_close(
        period,
        now_local=now.astimezone(zone).date(),
        policies=policies,
        last_closed=await uow.stipends.last_closed(site_id),
    )
    since = domain.local_midnight(min(p.effective_from for p in policies), zone)
    found = await uow.hours.unbooked_approved(site_id, since=since, before=period.end(zone))
    approved = [
        domain.ApprovedHours(
            r.hours_id, r.member_id, r.shift_id, r.role_id, local_date(r.shift_starts_at, zone), r.minutes
        )
        for r in found
    ]
    eligible = [a for a, r in zip(approved, found, strict=True) if r.eligible]
    first_of_year, _ = domain.year_periods(period.year)
    booked = await uow.stipends.booked_in_year(
        site_id, sorted({a.member_id for a in eligible}), first_of_year, str(period)
    )
    closing = domain.close_period(period, eligible, policies, booked_this_year=booked)

    by_member: dict[uuid.UUID, list[domain.Accrual]] = {}
    for entry in closing.entries:
        by_member.setdefault(entry.member_id, []).append(entry)
    payouts = [
        NewPayout(
            payout_id=uuid.uuid4(),
            site_id=site_id,
            member_id=member_id,
            period=str(period),
            minutes=sum(e.minutes for e in entries),
            shifts=sum(e.shifts for e in entries),
            accrued_cents=sum(e.amount_cents for e in entries),
            over_cap_cents=sum(e.over_cap_cents for e in entries),
            created_at=now,
        )
        for member_id, entries in by_member.items()
    ]
    payout_of = {p.member_id: p.payout_id for p in payouts}
    new_entries: list[NewEntry] = []
    booked_hours: list[BookedHours] = []
    for entry in closing.entries:
        entry_id = uuid.uuid4()
        payout_id = payout_of[entry.member_id]
        new_entries.append(
            NewEntry(
                entry_id=entry_id,
                site_id=site_id,
                member_id=entry.member_id,
                period=str(period),
                entry_type="accrued",
                kind=entry.kind,
                payout_id=payout_id,
                amount_cents=entry.amount_cents,
                over_cap_cents=entry.over_cap_cents,
                capped_by=entry.capped_by,
                minutes=entry.minutes,
                shifts=entry.shifts,
                lines=tuple(entry.lines),
                rate_policy_ids=tuple(entry.policy_ids),
                cap_policy_id=closing.cap_policy.policy_id,
                shift_id=entry.shift_id,
                original_period=str(entry.original_period),
                created_at=now,
                created_by=cmd.actor.actor_id,
            )
        )
        booked_hours.extend(
            BookedHours(
                p.hours,
                site_id,
                str(period),
                now,
                entry_id=entry_id,
                shifts=p.shifts,
                cents=p.cents,
                policy_id=p.policy_id,
            )
            for p in entry.priced
        )
        uow.emit(
            StipendAccrued(
                entry_id=entry_id,
                payout_id=payout_id,
                member_id=entry.member_id,
                period=str(period),
                kind=entry.kind,
                amount_cents=entry.amount_cents,
                over_cap_cents=entry.over_cap_cents,
                capped_by=list(entry.capped_by),
                minutes=entry.minutes,
                shifts=entry.shifts,
                policy_id=closing.cap_policy.policy_id,
                rate_policy_ids=entry.policy_ids,
                shift_id=entry.shift_id,
                original_period=str(entry.original_period),
            ),
            subject=entry_id,
            site_id=site_id,
            actor_id=cmd.actor.actor_id,
            at=now,
        )
    # Hours of volunteers who are not eligible now are settled without an entry: they never accrue later.
    booked_hours.extend(
        BookedHours(
            a, site_id, str(period), now, entry_id=None, shifts=1 if a.minutes > 0 else 0, cents=0, policy_id=None
        )
        for a, r in zip(approved, found, strict=True)
        if not r.eligible
    )
    await uow.stipends.add_payouts(payouts)
    await uow.stipends.add_entries(new_entries)
    await uow.stipends.book_hours(booked_hours)
    totals = PeriodTotals(
        cap_policy_id=closing.cap_policy.policy_id,
        volunteers=closing.volunteers,
        entries=len(closing.entries),
        adjustments=closing.adjustments,
        accrued_cents=closing.accrued_cents,
        over_cap_cents=closing.over_cap_cents,
    )
    await uow.stipends.close_period(site_id, str(period), totals, now, cmd.actor.actor_id)
    uow.emit(
        StipendPeriodClosed(
            period=str(period),
            closed_at=now,
            cap_policy_id=totals.cap_policy_id,
            volunteers=totals.volunteers,
            entries=totals.entries,
            adjustments=totals.adjustments,
            accrued_cents=totals.accrued_cents,
            over_cap_cents=totals.over_cap_cents,
        ),
        subject=str(period),
        site_id=site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return PeriodClosedOut(
        period=str(period),
        status="closed",
        closed_at=now,
        cap_policy_id=totals.cap_policy_id,
        volunteers=totals.volunteers,
        entries=totals.entries,
        adjustments=totals.adjustments,
        accrued_cents=totals.accrued_cents,
        over_cap_cents=totals.over_cap_cents,
    )


async def mark_payout_paid(cmd: MarkPayoutPaid, *, uow: VolunteeringUnitOfWork, clock: Clock) -> PaymentOut:
    now = clock.now()
    payout = await uow.stipends.lock_payout(cmd.payout_id, cmd.actor.scope)
    if payout is None:
        raise NotFound("No such payout here.", code="payout_not_found")
    if payout.payment_entry_id is not None:
        assert payout.paid_at is not None
        raise Conflict(
            "This payout was paid already.",
            code="already_paid",
            entry_id=str(payout.payment_entry_id),
            paid_at=payout.paid_at.isoformat(),
        )
    amount = domain.payable_cents(payout.accrued_cents, payout.reversed_cents)
    if amount <= 0:
        raise Conflict("Nothing is payable on this payout.", code="nothing_to_pay")
    entry_id = uuid.uuid4()
    await uow.stipends.add_entries(
        [
            NewEntry(
                entry_id=entry_id,
                site_id=payout.site_id,
                member_id=payout.member_id,
                period=payout.period,
                entry_type="paid",
                payout_id=payout.payout_id,
                amount_cents=amount,
                method=cmd.method,
                reference=cmd.reference,
                created_at=now,
                created_by=cmd.actor.actor_id,
            )
        ]
    )
    uow.emit(
        StipendPaid(
            payout_id=payout.payout_id,
            entry_id=entry_id,
            member_id=payout.member_id,
            period=payout.period,
            amount_cents=amount,
            paid_at=now,
            method=cmd.method,
        ),
        subject=entry_id,
        site_id=payout.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return PaymentOut(
        payout_id=payout.payout_id,
        entry_id=entry_id,
        member_id=payout.member_id,
        period=payout.period,
        amount_cents=amount,
        paid_at=now,
        method=cmd.method,
        reference=cmd.reference,
    )


async def reverse_stipend_entry(cmd: ReverseStipendEntry, *, uow: VolunteeringUnitOfWork, clock: Clock) -> ReversalOut:
    """Take an accrued entry back with a reversing entry of the same amount (in the same period and payout). Its
    hours are released: when the next period closes, those still approved are booked again as adjustments with
    their current minutes (correct or reject them first if they were wrong)."""
    now = clock.now()
    entry = await uow.stipends.entry(cmd.entry_id, cmd.actor.scope)
    if entry is None:
        raise NotFound("No such ledger entry here.", code="entry_not_found")
    if entry.entry_type != "accrued":
        raise Conflict("Only accrued entries are reversed.", code="not_reversible", entry_type=entry.entry_type)
    await uow.stipends.lock_payout(entry.payout_id, None)  # one at a time with its payment and other reversals
    existing = await uow.stipends.reversal_of(entry.entry_id)
    if existing is not None:
        raise Conflict("This entry was reversed already.", code="already_reversed", reversed_by=str(existing))
    reversal_id = uuid.uuid4()
    await uow.stipends.add_entries(
        [
            NewEntry(
                entry_id=reversal_id,
                site_id=entry.site_id,
                member_id=entry.member_id,
                period=entry.period,
                entry_type="reversed",
                payout_id=entry.payout_id,
                amount_cents=entry.amount_cents,
                minutes=entry.minutes,
                shifts=entry.shifts,
                reverses_entry_id=entry.entry_id,
                reason=cmd.reason,
                created_at=now,
                created_by=cmd.actor.actor_id,
            )
        ]
    )
    released = await uow.stipends.release_hours(entry.entry_id, reversal_id)
    uow.emit(
        StipendReversed(
            entry_id=reversal_id,
            reverses_entry_id=entry.entry_id,
            payout_id=entry.payout_id,
            member_id=entry.member_id,
            period=entry.period,
            amount_cents=entry.amount_cents,
            released_hours=released,
        ),
        subject=reversal_id,
        site_id=entry.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return ReversalOut(
        entry_id=reversal_id,
        reverses_entry_id=entry.entry_id,
        payout_id=entry.payout_id,
        member_id=entry.member_id,
        period=entry.period,
        amount_cents=entry.amount_cents,
        released_hours=released,
    )
