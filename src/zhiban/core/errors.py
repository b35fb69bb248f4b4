"""Domain errors with a stable problem type, turned into RFC 9457 problem JSON at the edges."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://zhiban.dev/problems/"


class ZhibanError(Exception):
    """Base error: `type_` is the stable slug of the problem, `status` its HTTP status."""

    type_ = "internal-error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.type_


class InvalidInput(ZhibanError):
    type_ = "invalid-input"
    status = 422
    title = "Invalid input"


class NotFound(ZhibanError):
    type_ = "not-found"
    status = 404
    title = "Not found"


class Forbidden(ZhibanError):
    type_ = "forbidden"
    status = 403
    title = "Forbidden"


class Unauthorized(ZhibanError):
    type_ = "unauthorized"
    status = 401
    title = "Authentication required"


class Conflict(ZhibanError):
    type_ = "conflict"
    status = 409
    title = "Conflict"


class TooLarge(ZhibanError):
    type_ = "payload-too-large"
    status = 413
    title = "Payload too large"


class RateLimited(ZhibanError):
    type_ = "rate-limited"
    status = 429
    title = "Too many requests"
