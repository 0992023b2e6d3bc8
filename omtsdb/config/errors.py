"""The one error type of the configuration package."""

from __future__ import annotations

from omtsdb.errors import BadDataError


class ConfigError(BadDataError):
    """A configuration (or a file it names) is invalid.

    The message follows Prometheus: ``parsing YAML file <path>: <what>`` when the text came from
    a file, the bare ``<what>`` otherwise. ``path`` is the offending file (``""`` when none).
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path
