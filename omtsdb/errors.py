"""The one error hierarchy of omtsdb.

Every error a client can see derives from :class:`OmtsdbError` and carries the Prometheus API
``errorType`` and HTTP status it maps to. ``omtsdb.api`` turns them into the envelope in one
function; nothing else decides a status code.
"""

from __future__ import annotations


class OmtsdbError(Exception):
    """Base of every error omtsdb raises on purpose."""

    error_type = "internal"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadDataError(OmtsdbError):
    """Invalid input: a bad parameter, a malformed query or payload (400, ``bad_data``)."""

    error_type = "bad_data"
    status = 400


class ParseError(BadDataError):
    """A syntax error with a position (0-based offsets into the input; line/column 1-based)."""

    def __init__(
        self,
        message: str,
        *,
        line: int = 0,
        column: int = 0,
        start: int = 0,
        end: int = 0,
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.start = start
        self.end = end


class ExecutionError(OmtsdbError):
    """A query failed while running, e.g. many-to-many matching (422, ``execution``)."""

    error_type = "execution"
    status = 422


class TooManySamplesError(ExecutionError):
    def __init__(self) -> None:
        super().__init__(
            "query processing would load too many samples into memory in query execution"
        )


class QueryTimeoutError(OmtsdbError):
    error_type = "timeout"
    status = 503


class UnavailableError(OmtsdbError):
    error_type = "unavailable"
    status = 503


class AppendError(BadDataError):
    """A sample the storage refuses; the data is bad and retrying will not help (400)."""


class OutOfOrderError(AppendError):
    def __init__(self, message: str = "out of order sample") -> None:
        super().__init__(message)


class DuplicateSampleError(AppendError):
    def __init__(
        self, message: str = "duplicate sample for timestamp"
    ) -> None:  # Prometheus: ErrDuplicateSampleForTimestamp
        super().__init__(message)


class OutOfBoundsError(AppendError):
    def __init__(self, message: str = "out of bounds") -> None:
        super().__init__(message)


class CorruptionError(OmtsdbError):
    """On-disk data failed a checksum or structural check (500, ``internal``)."""
