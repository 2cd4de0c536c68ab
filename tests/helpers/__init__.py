"""Shared test helpers (importable as ``helpers.*``: pyproject sets pytest's pythonpath to tests/)."""
