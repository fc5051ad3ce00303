"""Helpers the volunteering integration tests share: a site with its roles, volunteers and shifts set up over
HTTP against the running services, and direct looks into the database."""

from __future__ import annotations

import asyncio
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.volunteering.models import Base, VolunteeringUnitOfWork
from shared import access
from shared.db import make_connector
from shared.settings import Settings
from tests.support.members import make_known, new_known, register
from tests.support.stack import Client, Reply, SiteUnderTest

SERVICES = ["checkin", "volunteering", "audit"]
CENTER_ZONE = zoneinfo.ZoneInfo("America/New_York")  # the zone of the `center` fixture's site
# The columns of the bookkeeper's payout export, as documented.
STIPEND_CSV_COLUMNS = [
    "period",
    "payout_id",
    "member_id",
    "minutes",
    "shifts",
    "accrued_cents",
    "over_cap_cents",
    "reversed_cents",
    "payable_cents",
    "paid_cents",
    "paid_at",
    "method",
    "year_total_cents",
    "tax_paperwork_needed",
]


@dataclass
class Volunteer:
    member_id: uuid.UUID
    token: str


@dataclass
class Center:
    """One site of the running stack, with shortcuts to set it up and look into it."""

    client: Client
    settings: Settings
    site: SiteUnderTest
    engine: AsyncEngine
    setting_up: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(40))

    @property
    def coordinator(self) -> str:
        return self.site.tokens["coordinator"]

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        service: str = "volunteering",
        **kwargs: Any,
    ) -> Reply:
        return await self.client.call(service, method, path, token=token, json=json, **kwargs)

    async def ok(
        self, method: str, path: str, *, token: str | None = None, json: Any = None, status: int | None = None
    ) -> Any:
        reply = await self.call(method, path, token=token or self.coordinator, json=json)
        expected = status if status is not None else 200
        assert reply.status == expected, (method, path, reply.status, reply.body)
        return reply.body

    async def role(self, *, required: Iterable[str] = (), supervisor: bool = False, title: str = "Front desk") -> str:
        role_id = f"role_{uuid.uuid4().hex[:8]}"
        await self.ok(
            "POST",
            "/roles",
            json={"role_id": role_id, "title": title, "required_trainings": list(required), "supervisor": supervisor},
            status=201,
        )
        return role_id

    async def members(self, count: int = 1) -> list[uuid.UUID]:
        """New members registered at check-in, once the services running know them; where the stack runs without
        check-in, members put straight into the services' views, as its registration events would have."""
        if "checkin" not in self.client.urls:
            return await new_known(self.engine, self.site.site_id, count)
        registered: list[uuid.UUID] = []
        for start in range(0, count, 50):  # the check-in service's pool is not for hundreds at once
            registered += await register(self.client, self.site, min(50, count - start))
        return registered

    async def tokens_for(self, member_ids: list[uuid.UUID], role: access.Role = access.Role.VOLUNTEER) -> list[str]:
        async with self.engine.begin() as conn:
            return [
                (await access.issue_token(conn, role=role, site_id=self.site.site_id, member_id=m))[1]
                for m in member_ids
            ]

    async def volunteers(
        self,
        count: int,
        roles: list[str],
        *,
        trainings: dict[str, date | None] | None = None,
        member_ids: list[uuid.UUID] | None = None,
        stipend_eligible: bool = False,
    ) -> list[Volunteer]:
        """Volunteers with profiles holding ``roles`` and the given trainings (id → expiry or None): members
        registered at check-in, or the given ones (known to the services as registered at this site)."""
        if member_ids is None:
            members = await self.members(count)
        else:
            members = member_ids
            async with self.engine.begin() as conn:
                await make_known(conn, self.site.site_id, members)
        tokens = await self.tokens_for(members)

        async def set_up(member_id: uuid.UUID) -> None:
            async with self.setting_up:
                await self.set_up_volunteer(member_id, roles, trainings or {}, stipend_eligible=stipend_eligible)

        await asyncio.gather(*(set_up(m) for m in members))
        return [Volunteer(m, t) for m, t in zip(members, tokens, strict=True)]

    async def set_up_volunteer(
        self,
        member_id: uuid.UUID,
        roles: list[str],
        trainings: dict[str, date | None],
        *,
        stipend_eligible: bool = False,
    ) -> None:
        await self.ok(
            "PUT",
            f"/volunteers/{member_id}",
            json={"roles": roles, "monthly_hours_goal": 20, "stipend_eligible": stipend_eligible},
        )
        for training_id, expires in trainings.items():
            await self.ok(
                "POST",
                f"/volunteers/{member_id}/trainings",
                status=201,
                json={
                    "training_id": training_id,
                    "completed_on": "2025-01-15",
                    "expires_on": expires.isoformat() if expires else None,
                },
            )

    async def shift(
        self,
        role_id: str,
        *,
        starts_in: timedelta,
        hours: float = 3,
        capacity: int = 5,
        needs_supervisor: bool = False,
        starts_at: datetime | None = None,
    ) -> str:
        start = starts_at or (datetime.now(UTC) + starts_in).replace(microsecond=0)
        body = await self.ok(
            "POST",
            "/shifts",
            status=201,
            json={
                "role_id": role_id,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=hours)).isoformat(),
                "capacity": capacity,
                "needs_supervisor": needs_supervisor,
            },
        )
        return body["shift_id"]

    async def sign_up(self, shift_id: str, volunteer: Volunteer, *, by_coordinator: bool = False) -> Reply:
        if by_coordinator:
            return await self.call(
                "POST",
                f"/shifts/{shift_id}/signups",
                token=self.coordinator,
                json={"member_id": str(volunteer.member_id)},
            )
        return await self.call("POST", f"/shifts/{shift_id}/signups", token=volunteer.token, json={})

    async def drop(self, shift_id: str, volunteer: Volunteer, *, by_coordinator: bool = False) -> Reply:
        token = self.coordinator if by_coordinator else volunteer.token
        return await self.call("DELETE", f"/shifts/{shift_id}/signups/{volunteer.member_id}", token=token)

    def uow(self) -> VolunteeringUnitOfWork:
        """A unit of work of the service's own, for calling handlers directly (e.g. with a fixed clock)."""
        return VolunteeringUnitOfWork(make_connector(self.engine), Base.metadata)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(await conn.execute(text(sql), params))

    async def signups(self, shift_id: str) -> list[Any]:
        """The shift's sign-ups in arrival order."""
        return await self.rows(
            "SELECT signup_id, member_id, status, seq, promoted FROM volunteering.signups "
            "WHERE shift_id = :shift ORDER BY seq",
            shift=uuid.UUID(shift_id),
        )

    async def outbox(self, type_: str, subject: str | None = None) -> list[dict[str, Any]]:
        rows = await self.rows(
            "SELECT data FROM volunteering.outbox WHERE type = :type AND site_id = :site "
            "AND (CAST(:subject AS text) IS NULL OR subject = :subject) ORDER BY sequence",
            type=type_,
            site=self.site.site_id,
            subject=subject,
        )
        return [r.data for r in rows]

    # Stipends

    @property
    def admin(self) -> str:
        return self.site.tokens["admin"]

    async def stipend_volunteers(self, count: int, roles: list[str], *, eligible: bool = True) -> list[Volunteer]:
        """Volunteers holding ``roles``, marked stipend-eligible (or not)."""
        return await self.volunteers(count, roles, stipend_eligible=eligible)

    async def policy(self, **fields: Any) -> dict[str, Any]:
        """PUT /stipend-policy as the site's admin (integer cents; monthly_cap_cents defaults to $1,000)."""
        body = {"monthly_cap_cents": 100_000, **fields}
        if isinstance(body.get("effective_from"), date):
            body["effective_from"] = body["effective_from"].isoformat()
        return await self.ok("PUT", "/stipend-policy", token=self.admin, json=body)

    async def shift_on(
        self,
        role_id: str,
        day: date,
        *,
        hour: int = 17,
        minute: int = 0,
        hours: float = 3,
        zone: zoneinfo.ZoneInfo = CENTER_ZONE,
    ) -> str:
        """A shift starting at a wall-clock time of the site on ``day`` (past days too)."""
        start = datetime.combine(day, time(hour, minute), tzinfo=zone)
        return await self.shift(role_id, starts_in=timedelta(0), starts_at=start, hours=hours, capacity=20)

    async def worked(self, member_id: uuid.UUID, shift_id: str, minutes: int, *, approve: bool = True) -> str:
        """Hours a coordinator enters for a volunteer on a shift, approved unless told otherwise; the hours id."""
        added = await self.ok(
            "POST",
            "/hours",
            status=201,
            json={"member_id": str(member_id), "shift_id": shift_id, "minutes": minutes, "reason": "stipend test"},
        )
        if approve:
            await self.ok("POST", f"/hours/{added['hours_id']}/approve")
        return str(added["hours_id"])

    async def close(self, period: str, *, key: str | None = None, token: str | None = None) -> Reply:
        headers = {"Idempotency-Key": key} if key else None
        return await self.client.call(
            "volunteering", "POST", f"/stipend-periods/{period}/close", token=token or self.admin, headers=headers
        )

    async def text(
        self, path: str, *, token: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        """A GET whose answer is not JSON (CSV): status, text, headers."""
        async with self.client.http.get(
            self.client.urls["volunteering"] + path,
            headers={"Authorization": f"Bearer {token or self.admin}", **(headers or {})},
        ) as response:
            return response.status, await response.text(), dict(response.headers)

    async def ledger(self) -> list[Any]:
        return await self.rows(
            "SELECT * FROM volunteering.stipend_ledger WHERE site_id = :site ORDER BY seq", site=self.site.site_id
        )

    async def booked(self) -> list[Any]:
        """The hours records the site's ledger holds (not released)."""
        return await self.rows(
            "SELECT * FROM volunteering.stipend_hours WHERE site_id = :site AND released_by IS NULL ORDER BY claim_id",
            site=self.site.site_id,
        )

    async def audited(self, type_: str) -> list[dict[str, Any]]:
        """The CloudEvents of one type the audit log holds for this site, in chain order."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            reply = await self.client.call(
                "audit",
                "GET",
                f"/audit?site={self.site.site_id}&type={type_}&limit=500&after={after}",
                token=self.admin,
            )
            assert reply.status == 200, reply.body
            events += [item["event"] for item in reply.body["items"]]
            if reply.body["next_after"] is None:
                return events
            after = reply.body["next_after"]

    async def audit_types(self) -> set[str]:
        types: set[str] = set()
        after = 0
        while True:
            reply = await self.client.call(
                "audit",
                "GET",
                f"/audit?site={self.site.site_id}&limit=500&after={after}",
                token=self.site.tokens["admin"],
            )
            assert reply.status == 200, reply.body
            types |= {item["type"] for item in reply.body["items"]}
            if reply.body["next_after"] is None:
                return types
            after = reply.body["next_after"]
