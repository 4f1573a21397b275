"""Typed Railway errors. httpx's exceptions never escape the client; they are wrapped here,
with the cause chained. Messages never carry tokens or variable values."""

from __future__ import annotations


class RailwayError(Exception):
    """Base of every error the Railway client raises."""

    def __init__(self, message: str, *, operation: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.status_code = status_code

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        return f"{where}{self.message}"


class RailwayRetryableError(RailwayError):
    """5xx, network failures and timeouts: worth trying again later."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status_code=status_code)
        self.retry_after = retry_after


class RailwayRateLimitedError(RailwayRetryableError):
    """429, or a throttling message inside a 200, or the client's own budget exhausted."""


class RailwayAuthError(RailwayError):
    """'Not Authorized': the token is wrong, expired or lacks access. Not retried."""


class RailwayNotFoundError(RailwayError):
    """The object does not exist (or is not visible to this token). Not retried."""


class RailwayInvalidError(RailwayError):
    """The request was refused as invalid (validation errors, bad input). Not retried."""
