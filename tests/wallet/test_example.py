"""The budgeted-agent example runs and shows every refusal it promises."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "budgeted_agent.py"


def test_budgeted_agent_example(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "allowed: False" in out
    assert "search 3: refused by budget:task-42" in out
    assert "approval asked" in out
    assert "refused: payee someone-else is new" in out
    assert "2 paid, 1 refused" in out
