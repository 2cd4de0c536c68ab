"""The one exception the data package raises for unusable input."""

from __future__ import annotations


class DataError(Exception):
    """A file, line or setting that cannot be used; the message names it and says why."""
