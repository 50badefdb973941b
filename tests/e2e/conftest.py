"""End-to-end tests start the services as processes against the local stack."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault cases' measured figures (``support.faults.MEASURED``), one line each."""
    from support.faults import MEASURED

    if not MEASURED:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault figures (seconds)")
    write(f"{'suite':8} {'fault':46} {'videos':>6} {'took':>7} {'extra':>7} {'recovered':>9}")
    for m in MEASURED:
        extra = "-" if m.extra_s is None else f"{m.extra_s:7.1f}"
        recovered = "-" if m.recovered_s is None else f"{m.recovered_s:9.1f}"
        videos = "-" if m.videos == 0 else str(m.videos)
        write(f"{m.suite:8} {m.fault:46} {videos:>6} {m.took_s:7.1f} {extra:>7} {recovered:>9}")
