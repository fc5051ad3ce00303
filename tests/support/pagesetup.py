"""What the page tests set up over the APIs: roles, volunteers with tokens of their own, shifts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from shared import access
from shared.settings import Settings
from tests.support import members
from tests.support.stack import Client, SiteUnderTest


async def role(center: Client, site: SiteUnderTest, title: str = "Front desk") -> str:
    role_id = f"desk_{uuid.uuid4().hex[:6]}"
    reply = await center.call(
        "volunteering",
        "POST",
        "/roles",
        token=site.tokens["coordinator"],
        json={"role_id": role_id, "title": title, "required_trainings": [], "supervisor": False},
    )
    assert reply.status == 201, reply.body
    return role_id


async def volunteer(center: Client, settings: Settings, site: SiteUnderTest, role_id: str) -> tuple[str, str]:
    """A member holding ``role_id``, with a volunteer token of their own → (member_id, token)."""
    [member_id] = await members.register(center, site, known_to=["volunteering"])
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            _, token = await access.issue_token(
                conn, role=access.Role.VOLUNTEER, site_id=site.site_id, member_id=member_id
            )
    finally:
        await engine.dispose()
    reply = await center.call(
        "volunteering",
        "PUT",
        f"/volunteers/{member_id}",
        token=site.tokens["coordinator"],
        json={"roles": [role_id], "monthly_hours_goal": 10},
    )
    assert reply.status == 200, reply.body
    return str(member_id), token


async def shift(center: Client, site: SiteUnderTest, role_id: str, *, days_ahead: int, capacity: int = 2) -> str:
    start = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(minute=0, second=0, microsecond=0)
    reply = await center.call(
        "volunteering",
        "POST",
        "/shifts",
        token=site.tokens["coordinator"],
        json={
            "role_id": role_id,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=3)).isoformat(),
            "capacity": capacity,
            "needs_supervisor": False,
        },
    )
    assert reply.status == 201, reply.body
    return str(reply.body["shift_id"])


async def sign_up(center: Client, shift_id: str, token: str) -> dict:
    reply = await center.call("volunteering", "POST", f"/shifts/{shift_id}/signups", token=token, json={})
    assert reply.status == 201, reply.body
    return dict(reply.body)


async def a_busy_site(center: Client, settings: Settings, site: SiteUnderTest) -> str:
    """Something in every list: a volunteer with a confirmed shift and hours waiting for approval, an open shift and
    a full one (someone else's). → the volunteer's token"""
    role_id = await role(center, site)
    member_id, token = await volunteer(center, settings, site, role_id)
    _, other = await volunteer(center, settings, site, role_id)
    await shift(center, site, role_id, days_ahead=2)
    await sign_up(center, await shift(center, site, role_id, days_ahead=3, capacity=1), other)
    mine = await shift(center, site, role_id, days_ahead=4)
    await sign_up(center, mine, token)
    reply = await center.call(
        "volunteering",
        "POST",
        "/hours",
        token=site.tokens["coordinator"],
        json={"member_id": member_id, "shift_id": mine, "minutes": 150, "reason": "covered the desk"},
    )
    assert reply.status == 201, reply.body
    return token
