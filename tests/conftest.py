"""Shared pytest set-up: `tests/` is importable (corpus helpers), and tests can add
lines to the summary printed at the end of the run (counts like `1615/1615 round-trip`)."""

from __future__ import annotations

import pytest

SUMMARY: list[str] = []


@pytest.fixture
def summary_line():
    """Call with a line to print in the run's final summary."""
    return SUMMARY.append


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("irc summary")
        for line in SUMMARY:
            terminalreporter.write_line(line)
