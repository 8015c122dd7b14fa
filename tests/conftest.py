"""Shared pytest set-up: `tests/` is importable (corpus helpers)."""
