"""Domain errors carry a stable machine ``code`` and the HTTP status the web layer answers with."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra


class MalformedRequest(DomainError):
    status, code, title = 400, "malformed_json", "The body is not valid JSON"


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "Send application/json"


class InvalidInput(DomainError):
    status, code, title = 422, "invalid_input", "The request is not valid"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "A valid bearer token is required"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Not allowed for this token"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "A dependency is unavailable; try again shortly"
