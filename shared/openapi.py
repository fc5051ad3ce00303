"""OpenAPI 3.1 from the routes' own pydantic models, so the document can never drift from what is validated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode

if TYPE_CHECKING:
    from shared.web import Api

REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, invalid or revoked token",
    403: "Wrong role, or another site's or person's object",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Not JSON",
    422: "Invalid input",
    429: "Rate limited",
    503: "A dependency (database, broker) is unavailable",
}

RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'The bearer challenge (RFC 6750 §3): Bearer realm="rcc", with error="invalid_token" when '
            "the token sent is unknown, expired or revoked",
            "required": True,
            "schema": {"type": "string", "pattern": '^Bearer realm="rcc"(, error="invalid_token")?$'},
        }
    },
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}

# Operations are grouped by the first segment of their path (the resource); several resources of one area share a
# tag. A new resource needs its line here (tests/unit/test_generated_docs.py says which).
_AREAS: dict[str, tuple[str, str]] = {
    "visits": ("Visits", "Check-in and check-out at the kiosk, and the visits of a site (pseudonymous ids only)"),
    "checkouts": ("Visits", ""),
    "members": ("Members", "Members registered without a name needed: kiosk codes, visit counts, erasure"),
    "code-checks": ("Members", ""),
    "occupancy": ("Occupancy", "How many people are in the center now, against its capacity"),
    "roles": ("Roles", "Volunteer roles of a site and the trainings each requires"),
    "volunteers": ("Volunteers", "Volunteer profiles, trainings, and a volunteer's stipend statement"),
    "shifts": ("Shifts", "Shifts and recurring shift series, sign-ups and waitlists"),
    "shift-series": ("Shifts", ""),
    "hours": ("Hours", "Hours volunteers worked, and their approval, correction or rejection"),
    "stipend-policy": ("Stipends", "Stipend policy, monthly closes, the ledger and payouts, in integer cents"),
    "stipend-periods": ("Stipends", ""),
    "stipends": ("Stipends", ""),
    "ledger": ("Stipends", ""),
    "payouts": ("Stipends", ""),
    "me": ("Me", "A volunteer's own shifts, hours and stipends, and their private calendar feed"),
    "groups": ("Groups", "Recovery groups (RFC 5545 recurrence) and their sessions"),
    "sessions": ("Groups", ""),
    "events": ("Events", "Sober events, their registrations and attendance"),
    "registrations": ("Registrations", "A registration for a session or an event: its status, and cancelling it"),
    "upcoming": ("Calendars", "What is coming up: the kiosk display and iCalendar feeds for calendar apps"),
    "calendar": ("Calendars", ""),
    "calendar.ics": ("Calendars", ""),
    "audit": ("Audit log", "The append-only, hash-chained log of every event, and its verification"),
    "contacts": ("Contacts", "How a person is reached: addresses with consent, their verification, and unsubscribing"),
    "site": ("Site messages", "How a site's messages read, when its reminders go, and who is told of follow-ups"),
    "reports": ("Reports", "Figures for directors and funders, projected from the audit log; small cells suppressed"),
}
OPERATIONS_TAG = ("Operations", "Health, readiness, metrics and this document: no token needed")


def _area(path: str) -> str:
    segment = path.strip("/").split("/", 1)[0]
    return _AREAS[segment][0] if segment in _AREAS else segment


def _tags(used: set[str]) -> list[dict[str, str]]:
    """The tags the operations use, described, the service's own areas first and Operations last."""
    described = {name: text for name, text in (*_AREAS.values(), OPERATIONS_TAG) if text}
    ordered = sorted(used, key=lambda name: (name == OPERATIONS_TAG[0], name))
    return [{"name": name, "description": described.get(name, "")} for name in ordered]


def _servers(service: str) -> list[dict[str, Any]]:
    from shared.settings import Settings

    host = {"default": "127.0.0.1", "description": "RCC_HOST of the machine that runs it"}
    return [
        {
            "url": "http://{host}:{port}",
            "description": f"The {service} service itself (rcc serve {service}; RCC_{service.upper()}_PORT)",
            "variables": {"host": host, "port": {"default": str(Settings.model_fields[f"{service}_port"].default)}},
        },
        {
            "url": f"http://{{host}}:{{port}}/api/{service}",
            "description": "Through the pages app, on the origin of the kiosk, volunteer and coordinator pages",
            "variables": {"host": host, "port": {"default": str(Settings.model_fields["pages_port"].default)}},
        },
    ]


NO_NUL = "^[^\\u0000]*$"
# Visible ASCII without surrounding spaces: a header value is trimmed in transit, and must stay 1-200 characters.
IDEMPOTENCY_KEY = "^[!-~]([ -~]*[!-~])?$"
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "period": {
        "type": "string",
        "pattern": "^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(0[1-9]|1[0-2])$",
        "description": "A month, YYYY-MM",
    },
}

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "Stable machine code, e.g. already_checked_in"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def build_openapi(api: Api) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    paths: dict[str, Any] = {}
    for op in api.operations:
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": _operation_id(op.method, op.path),
            "tags": [_area(op.path)],
        }
        path_params = _path_params(op.path)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS.get(name, {"type": "string"})}
            for name in path_params
        ]
        if op.query is not None:
            query_schema = op.query.model_json_schema(mode="validation")
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
        if parameters:
            operation["parameters"] = parameters
        if op.idempotent:
            operation.setdefault("parameters", []).append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "A retry with the same key returns the first response and changes nothing.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": IDEMPOTENCY_KEY},
                }
            )
        if op.body is not None:
            # An empty body is read as {}: a model whose fields are all optional may be sent with none.
            operation["requestBody"] = {
                "required": _needs_body(op.body),
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        success: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": ref(op.response, "serialization")}}
        for content_type in op.content_types:
            success.setdefault("content", {})[content_type] = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {str(op.status): success}
        # Every route reads the database (a token, or the data itself): it may answer 503 while that is down.
        error_codes = set(op.errors) | {503}
        if path_params:
            error_codes.add(404)  # an id that names nothing (or nothing of this site)
        if op.body is not None:
            error_codes |= {400, 413, 415, 422}  # not JSON, too large, another media type, not valid
        if op.query is not None:
            error_codes.add(422)
        if op.idempotent:
            error_codes.add(422)  # a malformed Idempotency-Key, or one already used for another request
        if op.roles is not None:
            error_codes |= {401, 403, 429}  # the rate limit is per token
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Roles: {', '.join(op.roles)}."
        for status in sorted(error_codes):
            responses[str(status)] = _problem_response(status)
        operation["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    for path, summary, answers in (
        ("/healthz", "The process is up", {}),
        (
            "/readyz",
            "The database is reachable (relay, consumers and all: the broker too)",
            {"503": _problem_response(503, "Not ready: says which")},
        ),
        ("/metrics", "Prometheus metrics", {}),
        ("/openapi.json", "This document", {}),
    ):
        paths.setdefault(path, {})["get"] = {
            "summary": summary,
            "operationId": _operation_id("GET", path),
            "tags": [OPERATIONS_TAG[0]],
            "responses": {"200": {"description": "OK"}, **answers},
        }

    _refuse_nul(schemas)
    for operation in (op for methods in paths.values() for op in methods.values()):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                _refuse_nul(parameter["schema"])
    used_tags = {tag for methods in paths.values() for op in methods.values() for tag in op["tags"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version},
        "servers": _servers(api.service),
        "tags": _tags(used_tags),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _ERROR_TEXT.get(status, "Error"),
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }
    if status in _ERROR_HEADERS:
        response["headers"] = _ERROR_HEADERS[status]
    return response


def _needs_body(model: type[BaseModel]) -> bool:
    try:
        model.model_validate({})
    except ValidationError:
        return True
    return False


def _refuse_nul(schema: Any) -> None:
    """Every free-text string refuses U+0000 (PostgreSQL text cannot hold it; the services answer 422
    ``invalid_character``), so the document says so."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & schema.keys():
            schema["pattern"] = NO_NUL
        for value in schema.values():
            _refuse_nul(value)
    elif isinstance(schema, list):
        for item in schema:
            _refuse_nul(item)


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}") for p in path.strip("/").split("/") if p]
    return method.lower() + "_" + "_".join(words).replace("-", "_").replace(".", "_")


# A rule across fields that a request model checks in a validator, written as JSON Schema for its document (a
# model's ``json_schema_extra``), so generated "valid" bodies are valid. A field counts as given when it is present
# and not null; ``schemas`` are the non-null forms.


def exactly_one_of(**schemas: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [{"required": [name], "properties": {name: schema}} for name, schema in schemas.items()]}


def at_least_one_of(**schemas: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [{"required": [name], "properties": {name: schema}} for name, schema in schemas.items()]}


_DAY = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
# A local date (a whole day) or a local wall-clock time, neither with an offset.
LOCAL_DATE_OR_TIME = {"type": "string", "pattern": f"^{_DAY}(T{_CLOCK})?$"}
LOCAL_TIME = {"type": "string", "pattern": f"^{_CLOCK}$"}

# A wall-clock time without an offset (pydantic documents it as "date-time", which requires one).
LOCAL_DATE_TIME = {"type": "string", "pattern": f"^{_DAY}T{_CLOCK}$"}
