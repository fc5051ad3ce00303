"""OpenAPI 3.1 from the routes' own pydantic models, so the document can never drift from what is validated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

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

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    paths: dict[str, Any] = {}
    for op in api.operations:
        operation: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op.method, op.path)}
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
        error_codes = set(op.errors) | {503}
        if path_params:
            error_codes.add(404)  # an id that names nothing (or nothing of this site)
        if op.body is not None or op.query is not None:
            error_codes |= {400, 422}
        if op.idempotent:
            error_codes.add(422)  # a malformed Idempotency-Key, or one already used for another request
        if op.roles is not None:
            error_codes |= {401, 403}
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Roles: {', '.join(op.roles)}."
        for status in sorted(error_codes):
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
            }
        operation["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    for path, summary in (
        ("/healthz", "The process is up"),
        ("/readyz", "Database and broker are reachable"),
        ("/metrics", "Prometheus metrics"),
        ("/openapi.json", "This document"),
    ):
        paths.setdefault(path, {})["get"] = {"summary": summary, "responses": {"200": {"description": "OK"}}}

    _refuse_nul(schemas)
    for operation in (op for methods in paths.values() for op in methods.values()):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                _refuse_nul(parameter["schema"])
    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


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
