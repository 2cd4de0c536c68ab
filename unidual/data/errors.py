"""The exception the data package raises for unusable input (and its missing-files case)."""

from __future__ import annotations


class DataError(Exception):
    """A file, line or setting that cannot be used; the message names it and says why."""


class MissingFilesError(DataError):
    """Listed files that are absent: the message quotes the first few, ``missing`` holds every one.

    ``data check --json`` reports the whole list even when the source is refused for them.
    """

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)

    def __reduce__(self):  # pickled across processes with both arguments
        return (type(self), (str(self), self.missing))
