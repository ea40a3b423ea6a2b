"""The self-contained examples run as users run them and do what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(EXAMPLES.parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_httpx_sync_pays_refuses_and_respects_the_budget(tmp_path):
    out = run("httpx_sync.py", tmp_path)

    assert "paid 0.001000 tUSD to merchant" in out
    assert "dry run: would pay 0.001000 tUSD, allowed=True" in out
    assert "refused, nothing paid: 5.000000 tUSD is $5; the payment cap is $1" in out
    assert out.count("paid inside the budget") == 2 and "budget exhausted" in out
    assert out.count("journal: settled") == 3


def test_httpx_async_pays_concurrently(tmp_path):
    out = run("httpx_async.py", tmp_path)

    assert out.count("HTTP 200, paid 0.001000 tUSD") == 5
    assert "5 payments settled" in out


@pytest.mark.parametrize("name", ["requests_session.py"])
def test_requests_session(name, tmp_path):
    out = run(name, tmp_path)

    assert "200 {'report': 'paid'}" in out
    assert "receipt: Receipt(status='success'" in out
    assert "refused, nothing paid" in out


def test_mcp_agent_pays_paid_tools_within_its_budget(tmp_path):
    out = run("mcp_agent.py", tmp_path)

    assert "tools: caps, free, internal," in out
    assert "quote: 0.001000 tUSD, allowed=True" in out
    assert "free: free -> free" in out
    assert "paid: paid 0.001000 tUSD (receipt test-ref-" in out
    assert "paid_meta: paid 0.001000 tUSD (receipt test-ref-" in out
    assert "paid_iserror: refused, nothing paid: 0.001000 tUSD does not fit budget 'task-1'" in out
    assert "journal (2 settled):" in out
    assert out.count("settled  0.001000 tUSD mcp-stdio://paid-test/tools/") == 2
