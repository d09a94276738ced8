"""Domain errors; the web layer maps each to an HTTP status with a JSON body."""

from __future__ import annotations

from pydantic import ValidationError


class DomainError(Exception):
    """Base of the errors a client can cause; `code` is stable for API consumers."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, str] = {field: message} if field else {}


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError):
    code = "forbidden"


class Unavailable(DomainError):
    """Something omnicrm depends on (the ERP) cannot answer now; nothing the caller did."""

    code = "unavailable"


def validation_fields(exc: ValidationError, whole: str) -> dict[str, str]:
    """Pydantic's complaints as one message per field, by dotted location ("rules.1.pattern");
    a complaint about the value as a whole goes under `whole`."""
    fields: dict[str, str] = {}
    for problem in exc.errors(include_url=False):
        name = ".".join(str(part) for part in problem["loc"]) or whole
        fields.setdefault(name, problem["msg"])
    return fields
