"""Stipend commands (what admins ask for), the request bodies and queries they come from, and the results
handlers and queries answer with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from services.volunteering.commands import Actor, Body, Query, Reason, Slug
from services.volunteering.stipends.domain import Policy
from shared.contracts.volunteering import PaymentMethod

# Money is integer cents: strict, so 12.5 or "12" is refused rather than coerced.
Cents = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
Rate = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
PeriodText = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-03"])]
StipendKind = Literal["accrual", "adjustment"]
CapCode = Literal["monthly_cap", "yearly_cap", "org_cap"]
Year = Annotated[int, Field(ge=1900, le=9998)]


class RoleRateBody(Body):
    role_id: Slug
    hourly_rate_cents: Rate
    per_shift_cents: Rate


class StipendPolicyBody(Body):
    effective_from: date = Field(description="The local date the version takes effect; after the last closed period")
    hourly_rate_cents: Rate = Field(default=0, description="Per approved hour, by default")
    per_shift_cents: Rate = Field(default=0, description="Per completed shift, by default")
    role_rates: list[RoleRateBody] = Field(
        default_factory=list, max_length=50, description="A role's rates replace both default rates for that role"
    )
    monthly_cap_cents: Cents = Field(description="Most a volunteer is booked in one period")
    yearly_cap_cents: Cents | None = Field(default=None, description="Most a volunteer is booked in a calendar year")
    tax_threshold_cents: Cents = Field(default=60_000, description="A year total at or above this needs tax paperwork")
    org_monthly_cap_cents: Cents | None = Field(
        default=None, description="Most the site books in one period, all volunteers together (shared pro rata)"
    )

    @model_validator(mode="after")
    def one_rate_per_role(self) -> Self:
        role_ids = [r.role_id for r in self.role_rates]
        if len(role_ids) != len(set(role_ids)):
            raise ValueError("each role has at most one rate")
        return self


class PaidBody(Body):
    method: PaymentMethod
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="A check number or transfer reference; stays in this service",
    )


class ReverseBody(Body):
    reason: Reason


class StipendYearQuery(Query):
    year: Year | None = Field(default=None, description="Calendar year; this year on the site's clock by default")


class YearlyQuery(StipendYearQuery):
    limit: int = Field(default=200, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)


class PayoutsQuery(Query):
    format: Literal["json", "csv"] | None = Field(
        default=None, description="csv for the bookkeeper (also with Accept: text/csv); JSON pages, CSV is whole"
    )
    limit: int = Field(default=200, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)


@dataclass(frozen=True, slots=True)
class SetStipendPolicy:
    actor: Actor
    timezone: str
    effective_from: date
    hourly_rate_cents: int
    per_shift_cents: int
    role_rates: tuple[tuple[str, int, int], ...]  # (role_id, hourly_rate_cents, per_shift_cents)
    monthly_cap_cents: int
    yearly_cap_cents: int | None
    tax_threshold_cents: int
    org_monthly_cap_cents: int | None


@dataclass(frozen=True, slots=True)
class CloseStipendPeriod:
    actor: Actor
    timezone: str
    period: str


@dataclass(frozen=True, slots=True)
class MarkPayoutPaid:
    actor: Actor
    payout_id: uuid.UUID
    method: PaymentMethod
    reference: str | None


@dataclass(frozen=True, slots=True)
class ReverseStipendEntry:
    actor: Actor
    entry_id: uuid.UUID
    reason: str


class RoleRateOut(BaseModel):
    role_id: str
    hourly_rate_cents: int
    per_shift_cents: int


class StipendPolicyOut(BaseModel):
    policy_id: uuid.UUID
    effective_from: date
    hourly_rate_cents: int
    per_shift_cents: int
    role_rates: list[RoleRateOut]
    monthly_cap_cents: int
    yearly_cap_cents: int | None
    tax_threshold_cents: int
    org_monthly_cap_cents: int | None

    @classmethod
    def of(cls, policy: Policy) -> StipendPolicyOut:
        return cls(
            policy_id=policy.policy_id,
            effective_from=policy.effective_from,
            hourly_rate_cents=policy.hourly_rate_cents,
            per_shift_cents=policy.per_shift_cents,
            role_rates=[
                RoleRateOut(role_id=r.role_id, hourly_rate_cents=r.hourly_rate_cents, per_shift_cents=r.per_shift_cents)
                for r in policy.role_rates
            ],
            monthly_cap_cents=policy.monthly_cap_cents,
            yearly_cap_cents=policy.yearly_cap_cents,
            tax_threshold_cents=policy.tax_threshold_cents,
            org_monthly_cap_cents=policy.org_monthly_cap_cents,
        )


class StipendPolicies(BaseModel):
    current: StipendPolicyOut | None = Field(description="In effect today on the site's clock")
    upcoming: list[StipendPolicyOut] = Field(description="Versions that take effect later, soonest first")


class PeriodClosedOut(BaseModel):
    period: str
    status: Literal["closed"]
    closed_at: datetime
    cap_policy_id: uuid.UUID
    volunteers: int
    entries: int
    adjustments: int
    accrued_cents: int = Field(description="What the period books to be paid (adjustments included)")
    over_cap_cents: int = Field(description="What the caps held back: recorded, not paid")


class PeriodOut(BaseModel):
    period: str
    status: Literal["open", "closed"]
    closed_at: datetime | None
    volunteers: int
    entries: int
    adjustments: int
    accrued_cents: int
    over_cap_cents: int


class PeriodList(BaseModel):
    year: int
    items: list[PeriodOut]
    next_to_close: str | None = Field(description="The period to close next (periods are closed in order)")


class PaymentOut(BaseModel):
    payout_id: uuid.UUID
    entry_id: uuid.UUID
    member_id: uuid.UUID
    period: str
    amount_cents: int
    paid_at: datetime
    method: PaymentMethod
    reference: str | None


class ReversalOut(BaseModel):
    entry_id: uuid.UUID
    reverses_entry_id: uuid.UUID
    payout_id: uuid.UUID
    member_id: uuid.UUID
    period: str
    amount_cents: int
    released_hours: int = Field(description="Hours records free to be booked again at the next close")


class StipendLineOut(BaseModel):
    policy_id: uuid.UUID
    role_id: str
    hourly_rate_cents: int
    per_shift_cents: int
    minutes: int
    shifts: int
    cents: int


class BookedHoursOut(BaseModel):
    hours_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    local_date: date
    minutes: int
    cents: int
    released: bool = Field(description="Its entry was reversed: the record may be booked again")


class StipendEntryOut(BaseModel):
    entry_id: uuid.UUID
    entry_type: Literal["accrued", "paid", "reversed"]
    kind: StipendKind | None
    period: str
    amount_cents: int
    over_cap_cents: int
    capped_by: list[CapCode]
    minutes: int
    shifts: int
    shift_id: uuid.UUID | None
    original_period: str | None
    reverses_entry_id: uuid.UUID | None
    reversed_by: uuid.UUID | None = None
    method: PaymentMethod | None
    created_at: datetime
    lines: list[StipendLineOut] = Field(default_factory=list, description="Rates used and the hours behind them")
    hours: list[BookedHoursOut] = Field(default_factory=list)


class PayoutOut(BaseModel):
    payout_id: uuid.UUID
    member_id: uuid.UUID
    period: str
    minutes: int
    shifts: int
    accrued_cents: int
    over_cap_cents: int
    reversed_cents: int
    payable_cents: int = Field(description="accrued - reversed")
    paid_cents: int
    balance_cents: int = Field(description="payable - paid; negative when an entry was reversed after payment")
    paid_at: datetime | None
    method: PaymentMethod | None


class AdminPayoutOut(PayoutOut):
    reference: str | None
    year_total_cents: int
    tax_paperwork_needed: bool


class PayoutPage(BaseModel):
    period: str
    status: Literal["open", "closed"]
    closed_at: datetime | None
    items: list[AdminPayoutOut]
    next_cursor: str | None


class YearTotalOut(BaseModel):
    year: int
    site_id: str
    member_id: uuid.UUID
    minutes: int
    total_cents: int = Field(description="Booked in the year's periods: accrued - reversed")
    paid_cents: int
    over_cap_cents: int
    tax_threshold_cents: int
    tax_paperwork_needed: bool


class YearlyPage(BaseModel):
    year: int
    tax_threshold_cents: int
    items: list[YearTotalOut]
    next_cursor: str | None


class StatementPeriod(PayoutOut):
    entries: list[StipendEntryOut]


class StipendStatement(BaseModel):
    member_id: uuid.UUID
    year: int
    periods: list[StatementPeriod]
    years: list[YearTotalOut]
