"""Helpers the volunteering integration tests share: a site with its roles, volunteers and shifts set up over
HTTP against the running services, and direct looks into the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.volunteering.models import Base, VolunteeringUnitOfWork
from shared import access
from shared.db import make_connector
from shared.settings import Settings
from tests.support.stack import Client, Reply, SiteUnderTest

SERVICES = ["checkin", "volunteering", "audit"]


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

    async def call(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                   service: str = "volunteering", **kwargs: Any) -> Reply:
        return await self.client.call(service, method, path, token=token, json=json, **kwargs)

    async def ok(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                 status: int | None = None) -> Any:
        reply = await self.call(method, path, token=token or self.coordinator, json=json)
        expected = status if status is not None else 200
        assert reply.status == expected, (method, path, reply.status, reply.body)
        return reply.body

    async def role(self, *, required: Iterable[str] = (), supervisor: bool = False, title: str = "Front desk") -> str:
        role_id = f"role_{uuid.uuid4().hex[:8]}"
        await self.ok("POST", "/roles", json={"role_id": role_id, "title": title,
                                              "required_trainings": list(required), "supervisor": supervisor},
                      status=201)
        return role_id

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
    ) -> list[Volunteer]:
        """Volunteers with profiles holding ``roles`` and the given trainings (id → expiry or None)."""
        members = member_ids or [uuid.uuid4() for _ in range(count)]
        tokens = await self.tokens_for(members)

        async def set_up(member_id: uuid.UUID) -> None:
            async with self.setting_up:
                await self.set_up_volunteer(member_id, roles, trainings or {})

        await asyncio.gather(*(set_up(m) for m in members))
        return [Volunteer(m, t) for m, t in zip(members, tokens, strict=True)]

    async def set_up_volunteer(self, member_id: uuid.UUID, roles: list[str], trainings: dict[str, date | None]) -> None:
        await self.ok("PUT", f"/volunteers/{member_id}", json={"roles": roles, "monthly_hours_goal": 20})
        for training_id, expires in trainings.items():
            await self.ok(
                "POST", f"/volunteers/{member_id}/trainings", status=201,
                json={"training_id": training_id, "completed_on": "2025-01-15",
                      "expires_on": expires.isoformat() if expires else None},
            )

    async def shift(self, role_id: str, *, starts_in: timedelta, hours: float = 3, capacity: int = 5,
                    needs_supervisor: bool = False, starts_at: datetime | None = None) -> str:
        start = starts_at or (datetime.now(UTC) + starts_in).replace(microsecond=0)
        body = await self.ok("POST", "/shifts", status=201, json={
            "role_id": role_id, "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=hours)).isoformat(),
            "capacity": capacity, "needs_supervisor": needs_supervisor,
        })
        return body["shift_id"]

    async def sign_up(self, shift_id: str, volunteer: Volunteer, *, by_coordinator: bool = False) -> Reply:
        if by_coordinator:
            return await self.call("POST", f"/shifts/{shift_id}/signups", token=self.coordinator,
                                   json={"member_id": str(volunteer.member_id)})
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
            "WHERE shift_id = :shift ORDER BY seq", shift=uuid.UUID(shift_id),
        )

    async def outbox(self, type_: str, subject: str | None = None) -> list[dict[str, Any]]:
        rows = await self.rows(
            "SELECT data FROM volunteering.outbox WHERE type = :type AND site_id = :site "
            "AND (CAST(:subject AS text) IS NULL OR subject = :subject) ORDER BY sequence",
            type=type_, site=self.site.site_id, subject=subject,
        )
        return [r.data for r in rows]

    async def audit_types(self) -> set[str]:
        types: set[str] = set()
        after = 0
        while True:
            reply = await self.client.call(
                "audit", "GET", f"/audit?site={self.site.site_id}&limit=500&after={after}",
                token=self.site.tokens["admin"],
            )
            assert reply.status == 200, reply.body
            types |= {item["type"] for item in reply.body["items"]}
            if reply.body["next_after"] is None:
                return types
            after = reply.body["next_after"]
