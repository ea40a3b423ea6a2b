"""Reports how many places the leak tests searched (the issue's "0 secrets in N places")."""

from __future__ import annotations

from typing import Any

from tests.security.leaks import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.places:
        terminalreporter.write_line(
            f"secret leak checks: {len(TALLY.leaks)} leaks in {TALLY.places} places "
            f"({TALLY.checks} place x secret checks)"
        )
