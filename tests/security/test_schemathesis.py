"""Item 11: Schemathesis against every service's ``/openapi.json`` with all its default checks and valid tokens.

Generated valid input must be accepted (or refused only for a documented reason: an unknown id, a conflict),
generated invalid input must be refused with a documented 4xx, no answer may be a 5xx, and every answer must match
the document (status, content type, headers, body schema)."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import positive_data_acceptance

from shared.access import Role
from shared.settings import Settings
from tests.security.conftest import SERVICES, api_of, services_in_thread, unlimited
from tests.support.members import until_known
from tests.support.stack import SiteUnderTest

pytestmark = [
    pytest.mark.e2e,
    # The services run in a thread of this process (conftest.services_in_thread), and libraries there touch the
    # global `random` state while hypothesis draws an example; hypothesis then blames the strategy. It is not
    # the strategy: schemathesis' own generators use hypothesis' randomness.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

# Small and deterministic: the suite runs on every CI build, so a fixed set of examples per operation, no example
# database, and no stateful phase (links between operations are not declared, so it would add little).
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": 10, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)

# The strongest role a route accepts reaches the most code (an admin is not confined to a site).
PREFERENCE = (Role.ADMIN, Role.COORDINATOR, Role.VOLUNTEER, Role.KIOSK)


def _route_roles() -> dict[tuple[str, str], Role | None]:
    roles: dict[tuple[str, str], Role | None] = {}
    for service in SERVICES:
        for op in api_of(service).operations:
            key = (op.method.upper(), op.path)
            assert key not in roles, f"{key} is declared by two services"
            roles[key] = None if op.roles is None else next(role for role in PREFERENCE if role in op.roles)
    return roles


ROUTE_ROLES = _route_roles()


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[dict[str, str]]:
    with services_in_thread(unlimited(settings), SERVICES) as urls:
        yield urls


# Members registered at check-in, named wherever volunteering, gatherings or notify take a member id: a made-up id is
# refused there (unknown_member), so generated ids would never reach what a real member's request reaches.
MEMBERS_NAMED = 8
MEMBER_FIELDS = ("member_id", "facilitator_member_id")
NAMES_MEMBERS = ("volunteering", "gatherings", "notify")


@pytest.fixture(scope="module")
async def registered(served: dict[str, str], home: SiteUnderTest, settings: Settings) -> list[str]:
    made = []
    async with aiohttp.ClientSession() as http:
        for _ in range(MEMBERS_NAMED):
            async with http.post(
                served["checkin"] + "/members",
                json={},
                headers={"Authorization": f"Bearer {home.tokens['coordinator']}"},
            ) as reply:
                assert reply.status == 201, await reply.text()
                made.append(uuid.UUID((await reply.json())["member_id"]))
    await until_known(settings.database_url, made, NAMES_MEMBERS)
    return [str(m) for m in made]


def _name_registered(values: Any, registered: list[str], *, malformed_too: bool = False) -> None:
    """Each generated member id becomes one of the registered members, the same generated id always the same
    member. A malformed one (not a UUID) stays, as the input under test, unless ``malformed_too``."""
    if not isinstance(values, dict):
        return
    for field in MEMBER_FIELDS:
        drawn = values.get(field)
        if not isinstance(drawn, str):
            continue
        try:
            pick = uuid.UUID(drawn).int
        except ValueError:
            if not malformed_too:
                continue
            pick = zlib.crc32(drawn.encode())
        values[field] = registered[pick % len(registered)]


def _valid_path(case: Case) -> bool:
    """Whether the case's path parameters were drawn to fit the document (which says only "a string" of a member
    id in a path, so a valid one is rarely a UUID)."""
    components = case.meta.components if case.meta is not None else {}
    return all(info.mode == GenerationMode.POSITIVE for where, info in components.items() if where == "path")


def _schema(service: str) -> schemathesis.BaseSchema:
    """The document the service serves at /openapi.json (built from the same route declarations, no server
    needed to collect the tests; ``test_served_documents_are_the_ones_fuzzed`` holds them equal)."""
    return schemathesis.openapi.from_dict(api_of(service).openapi(), config=CONFIG)


checkin = _schema("checkin")
volunteering = _schema("volunteering")
gatherings = _schema("gatherings")
audit = _schema("audit")
notify = _schema("notify")


# Schema-valid input that a service still refuses with 422, for a rule JSON Schema cannot state: an order between
# two fields, a date the calendar does not have, a recurrence rule's grammar, a cursor (an opaque token we hand
# out, like an id). Each is named by operation and by the problem's code (for ``invalid_request``, by the pydantic
# error type), so a refusal for any other reason still fails the positive-data check.
# Generation repeats Idempotency-Key values across different requests of one token.
EVERYWHERE = {"idempotency_key_reused"}
CURSOR = {"bad_cursor"}
# From before to, a bounded span, and (reports) years 1900-2999: a pattern on a `format: date` string makes
# generation filter out most candidates (hypothesis's filter_too_much health check), so that rule is named here.
RANGE = CURSOR | {"range_reversed", "range_too_long", "date_out_of_range"}
ORDER = {"invalid_request:value_error"}  # a model validator: one field before another, no duplicates
RECURRENCE = ORDER | {
    "bad_rrule",
    "rrule_unknown_part",
    "rrule_duplicate_part",
    "rrule_interval_out_of_range",
    "rrule_part_out_of_range",
    "rrule_count_and_until",
    "rrule_part_not_allowed",
    "rrule_never_occurs",
    "rrule_expansion_too_long",
    "no_occurrences",
    "no_sessions",
    "invalid_request:datetime_parsing",
    "invalid_request:datetime_from_date_parsing",
    "invalid_request:date_from_datetime_parsing",
}
ROLE = {"unknown_role"}  # a role id that names no role of the site (an unknown id in a body)
# A kiosk's occurred_at is the last day up to now and after the site's last closing, relative to the server's clock.
OCCURRED = {"occurred_in_future", "occurred_too_long_ago", "occurred_before_closing"}
SEMANTIC_REFUSALS: dict[tuple[str, str], set[str]] = {
    ("GET", "/visits"): RANGE,
    ("POST", "/visits"): OCCURRED,
    ("POST", "/visits/{visit_id}/checkout"): OCCURRED,
    ("POST", "/checkouts"): OCCURRED,
    ("GET", "/shifts"): RANGE,
    ("GET", "/me/shifts"): RANGE,
    ("GET", "/me/hours"): RANGE,
    ("GET", "/hours"): RANGE,
    ("GET", "/stipend-periods/{period}/payouts"): CURSOR,
    ("GET", "/stipends/yearly"): CURSOR,
    ("GET", "/groups"): CURSOR,
    ("GET", "/groups/{group_id}/sessions"): RANGE,
    ("GET", "/events"): RANGE,
    ("PUT", "/volunteers/{member_id}"): ROLE,
    # A neutral name says nothing of recovery; a header-safe one is on one line, trimmed (words and whitespace
    # JSON Schema cannot list).
    ("PUT", "/site/messages"): {"message_name_not_neutral", "bad_message_name"},
    ("POST", "/volunteers/{member_id}/trainings"): ORDER,
    ("POST", "/shifts"): ROLE | {"ends_before_start", "shift_too_long", "ends_in_past"},
    ("PATCH", "/shifts/{shift_id}"): {"ends_before_start", "shift_too_long"},
    ("POST", "/shift-series"): ROLE | RECURRENCE | {"shift_too_long"},
    ("PUT", "/stipend-policy"): ROLE | ORDER,
    ("POST", "/groups"): RECURRENCE,
    ("POST", "/sessions/{session_id}/move"): ORDER,
    ("POST", "/events"): ORDER | {"ends_in_past"},
    ("GET", "/reports/summary"): RANGE,
    ("GET", "/reports/daily"): RANGE,
    ("GET", "/reports/daily.svg"): RANGE,
    # An address is a string to the document; whether mail can go to it is the service's rule.
    ("POST", "/members/{member_id}/contacts"): {"bad_address", "channel_not_supported", "bad_quiet_hours"},
    ("PATCH", "/members/{member_id}/contacts/{contact_id}"): {"bad_quiet_hours", "bad_locale"},
    # The token and the key travel in a form or a link's query, which the document does not model.
    ("POST", "/contacts/verify"): {"verification_token_missing"},
    ("POST", "/contacts/unsubscribe"): {"unsubscribe_key_missing"},
}


def _refusal_reasons(response: Response) -> set[str]:
    if response.status_code != 422:
        return set()
    problem = response.json()
    if problem["code"] != "invalid_request":
        return {problem["code"]}
    return {f"invalid_request:{error['type']}" for error in problem.get("errors", [])}


def _call(
    service: str, case: Case, served: dict[str, str], site: SiteUnderTest, registered: list[str] | None = None
) -> None:
    if registered:
        _name_registered(case.body, registered)
        _name_registered(case.path_parameters, registered, malformed_too=_valid_path(case))
    role = ROUTE_ROLES.get((case.method.upper(), case.operation.path))
    headers = {} if role is None else {"Authorization": f"Bearer {site.tokens[role]}"}
    response = case.call(base_url=served[service], headers=headers)
    reasons = _refusal_reasons(response)
    allowed = EVERYWHERE | SEMANTIC_REFUSALS.get((case.method.upper(), case.operation.path), set())
    excluded = [positive_data_acceptance] if reasons and reasons <= allowed else []
    case.validate_response(
        response,
        headers=headers,
        excluded_checks=excluded,
        transport_kwargs={"base_url": served[service]},
    )


@checkin.parametrize()
def test_checkin(case: Case, served: dict[str, str], home: SiteUnderTest) -> None:
    _call("checkin", case, served, home)


@volunteering.parametrize()
def test_volunteering(case: Case, served: dict[str, str], home: SiteUnderTest, registered: list[str]) -> None:
    _call("volunteering", case, served, home, registered)


@gatherings.parametrize()
def test_gatherings(case: Case, served: dict[str, str], home: SiteUnderTest, registered: list[str]) -> None:
    _call("gatherings", case, served, home, registered)


@audit.parametrize()
def test_audit(case: Case, served: dict[str, str], home: SiteUnderTest) -> None:
    _call("audit", case, served, home)


@notify.parametrize()
def test_notify(case: Case, served: dict[str, str], home: SiteUnderTest, registered: list[str]) -> None:
    _call("notify", case, served, home, registered)


def test_a_form_without_its_boundary_is_refused(served: dict[str, str]) -> None:
    """Found by the fuzzing above (ST102): a malformed Content-Type must be a 4xx problem, not a server error."""
    answer = requests.post(
        served["notify"] + "/contacts/verify", headers={"Content-Type": "multipart/form-data"}, timeout=10
    )
    assert 400 <= answer.status_code < 500, answer.text


def test_served_documents_are_the_ones_fuzzed(served: dict[str, str]) -> None:
    for service in SERVICES:
        served_document = requests.get(served[service] + "/openapi.json", timeout=10).json()
        assert served_document == api_of(service).openapi(), service
