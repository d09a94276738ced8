"""Domain errors; the web layer maps each to an HTTP status with a JSON body."""

from __future__ import annotations


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
