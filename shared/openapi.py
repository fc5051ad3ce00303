"""OpenAPI 3.1 from the routes' own pydantic models, so the document can never drift from what is validated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

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
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(op.path)
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
                    "schema": {"type": "string", "maxLength": 200},
                }
            )
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        success: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": ref(op.response, "serialization")}}
        for content_type in op.content_types:
            success.setdefault("content", {})[content_type] = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {str(op.status): success}
        error_codes = set(op.errors) | {503}
        if op.body is not None or op.query is not None:
            error_codes |= {400, 422}
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

    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}") for p in path.strip("/").split("/") if p]
    return method.lower() + "_" + "_".join(words).replace("-", "_").replace(".", "_")
