"""Display names against the real services: a volunteer gives, reads and removes their own; coordinators and admins
of the same site look names up, each look-up that shows one is recorded in the audit log as a disclosure (ids only,
never the name); other sites' members stay null; erasure deletes the name."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from services.checkin import SCHEMA
from services.checkin.models import Base
from shared import access
from shared.settings import Settings
from tests.support.members import register
from tests.support.stack import Reply, eventually, make_site
from tests.support.volunteering import Center

pytestmark = pytest.mark.integration

NAME = "Ana María Ríos"
DISCLOSED = "checkin.names_disclosed"


async def name_call(center: Center, method: str, member_id: uuid.UUID, token: str, json: Any = None) -> Reply:
    return await center.call(method, f"/members/{member_id}/display-name", token=token, json=json, service="checkin")


async def look_up(center: Center, member_ids: list[Any], token: str | None = None) -> Reply:
    return await center.call(
        "POST",
        "/members/display-names",
        token=token or center.coordinator,
        json={"member_ids": [str(m) for m in member_ids]},
        service="checkin",
    )


async def checkin_outbox(center: Center, type_: str) -> list[dict[str, Any]]:
    rows = await center.rows(
        "SELECT data, subject, actor_id FROM checkin.outbox WHERE type = :type AND site_id = :site ORDER BY sequence",
        type=type_,
        site=center.site.site_id,
    )
    return [{"data": r.data, "subject": r.subject, "actor_id": r.actor_id} for r in rows]


async def test_a_volunteer_gives_reads_and_removes_their_own_display_name_only(center: Center) -> None:
    me, other = await center.members(2)
    [token] = await center.tokens_for([me])

    empty = await name_call(center, "GET", me, token)
    assert (empty.status, empty.body["display_name"]) == (200, None)
    given = await name_call(center, "PUT", me, token, {"display_name": f"  {NAME}  "})
    assert (given.status, given.body["display_name"]) == (200, NAME), given.body
    assert (await name_call(center, "GET", me, token)).body["display_name"] == NAME
    again = await name_call(center, "PUT", me, token, {"display_name": "Ana"})
    assert (again.status, again.body["display_name"]) == (200, "Ana")

    for bad, code in [
        ("", "display_name_length"),
        ("   ", "display_name_length"),
        ("x" * 61, "display_name_length"),
        ("Ana\nRíos", "display_name_characters"),
        ("Ana\tRíos", "display_name_characters"),
        ("Ana \u202eadmin", "display_name_characters"),
    ]:
        refused = await name_call(center, "PUT", me, token, {"display_name": bad})
        assert (refused.status, refused.body["code"]) == (422, code), (bad, refused.body)
    assert (await name_call(center, "PUT", me, token, {"display_name": "x" * 60})).status == 200
    assert (await name_call(center, "PUT", me, token, {"display_name": "Zoë 👩‍👧"})).status == 200

    for method in ("GET", "PUT", "DELETE"):
        someone_else = await name_call(center, method, other, token, {"display_name": "Not me"})
        assert (someone_else.status, someone_else.body["code"]) == (403, "not_yours"), method
        staff = await name_call(center, method, me, center.coordinator, {"display_name": "Set by staff"})
        assert (staff.status, staff.body["code"]) == (403, "wrong_role"), method

    removed = await name_call(center, "DELETE", me, token)
    assert (removed.status, removed.body["display_name"]) == (200, None)
    assert (await name_call(center, "GET", me, token)).body["display_name"] is None
    assert (await look_up(center, [me])).body["names"] == {str(me): None}


async def test_staff_of_the_site_see_names_and_each_look_up_is_audited_without_the_name(
    center: Center, settings: Settings
) -> None:
    named, unnamed = await center.members(2)
    [token] = await center.tokens_for([named])
    assert (await name_call(center, "PUT", named, token, {"display_name": NAME})).status == 200

    # A member of another site, with a name of their own: never shown here, and not told apart from "no name".
    elsewhere = await make_site(settings)
    [stranger] = await register(center.client, elsewhere, 1)
    async with center.engine.begin() as conn:
        _, stranger_token = await access.issue_token(
            conn, role=access.Role.VOLUNTEER, site_id=elsewhere.site_id, member_id=stranger
        )
    theirs = await name_call(center, "PUT", stranger, stranger_token, {"display_name": "Elsewhere Person"})
    assert theirs.status == 200, theirs.body
    # Nor can a volunteer name themself on a site that is not their member's.
    foreign = await name_call(center, "PUT", stranger, (await center.tokens_for([stranger]))[0], {"display_name": "X"})
    assert (foreign.status, foreign.body["code"]) == (404, "member_not_found")

    made_up = uuid.uuid4()
    asked = [named, unnamed, stranger, made_up, named]
    shown = await look_up(center, asked)
    assert shown.status == 200, shown.body
    assert shown.body["names"] == {str(named): NAME, str(unnamed): None, str(stranger): None, str(made_up): None}
    by_admin = await look_up(center, [named], token=center.admin)
    assert by_admin.body["names"] == {str(named): NAME}

    # Shown nothing: nothing to record.
    assert (await look_up(center, [unnamed, stranger, made_up])).status == 200

    recorded = await checkin_outbox(center, DISCLOSED)
    viewers = {
        "coordinator": f"token:{center.site.token_ids['coordinator']}",
        "admin": f"token:{center.site.token_ids['admin']}",
    }
    assert [(r["data"]["viewer_role"], r["data"]["viewer_id"], r["data"]["member_ids"]) for r in recorded] == [
        ("coordinator", viewers["coordinator"], [str(named)]),
        ("admin", viewers["admin"], [str(named)]),
    ]
    assert all(r["subject"] == r["actor_id"] == r["data"]["viewer_id"] for r in recorded)

    # The audit log holds each disclosure, with ids and never a name; nor does any check-in event carry one.
    async def audited() -> bool:
        return len(await center.audited(DISCLOSED)) == 2

    await eventually(audited)
    entries = await center.audited(DISCLOSED)
    assert [e["data"]["member_ids"] for e in entries] == [[str(named)], [str(named)]]
    assert [(e["siteid"], e["actorid"]) for e in entries] == [
        (center.site.site_id, viewers["coordinator"]),
        (center.site.site_id, viewers["admin"]),
    ]
    every_event = await center.rows("SELECT data FROM checkin.outbox")
    assert not [r for r in every_event if "Ana" in json.dumps(r.data) or "Elsewhere" in json.dumps(r.data)]
    assert NAME not in json.dumps(entries, ensure_ascii=False)


async def test_a_look_up_asks_for_1_to_200_members_and_only_staff_may_make_it(center: Center) -> None:
    [member] = await center.members(1)
    [token] = await center.tokens_for([member])
    assert (await look_up(center, [])).status == 422
    assert (await look_up(center, [uuid.uuid4() for _ in range(201)])).status == 422
    assert (await look_up(center, [uuid.uuid4() for _ in range(200)])).status == 200
    for who in (token, center.site.tokens["kiosk"]):
        refused = await look_up(center, [member], token=who)
        assert (refused.status, refused.body["code"]) == (403, "wrong_role")
    # The look-up is not also "the member whose id is display-names": only POST is allowed there.
    wrong = await center.call("GET", "/members/display-names", token=center.coordinator, service="checkin")
    assert (wrong.status, wrong.body["code"], wrong.headers["Allow"]) == (405, "method_not_allowed", "POST")


async def test_erasing_a_member_deletes_their_display_name(center: Center) -> None:
    [member] = await center.members(1)
    [token] = await center.tokens_for([member])
    assert (await name_call(center, "PUT", member, token, {"display_name": NAME})).status == 200
    assert len(await center.rows("SELECT 1 FROM checkin.display_names WHERE member_id = :m", m=member)) == 1

    erased = await center.call("POST", f"/members/{member}/erase", token=center.admin, service="checkin")
    assert erased.status == 200, erased.body
    assert await center.rows("SELECT 1 FROM checkin.display_names WHERE member_id = :m", m=member) == []
    assert (await look_up(center, [member])).body["names"] == {str(member): None}
    gone = await name_call(center, "PUT", member, token, {"display_name": NAME})
    assert (gone.status, gone.body["code"]) == (404, "member_not_found")


async def test_the_display_names_migration_builds_the_table_the_model_describes(engine: AsyncEngine) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _parents: name == SCHEMA if kind == "schema" else True,
                "compare_type": True,
                "version_table_schema": SCHEMA,
            },
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        found = await conn.run_sync(differences)
    assert [d for d in found if "display_names" in repr(d)] == []
