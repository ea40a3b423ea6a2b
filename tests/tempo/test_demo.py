"""The README demo runs end to end and stops everything it started."""

from __future__ import annotations

import pytest

from mpp_client import demo

pytestmark = [pytest.mark.chain, pytest.mark.peer]


def test_demo_pays_within_its_budget_and_cleans_up(anvil, mppx_server, capsys, monkeypatch):
    # (the fixtures only make sure anvil and mppx are installed; the demo starts its own)
    started = []
    real_stop = demo.stop_server

    def tracking_stop(process):
        started.append(process)
        real_stop(process)

    monkeypatch.setattr(demo, "stop_server", tracking_stop)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert out.count("HTTP 200") == 4
    assert out.count("refused before signing") == 2
    assert "paid to servers:    0.040000 pathUSD" in out
    assert "partner received:   0.002500 pathUSD" in out
    assert [p.poll() is not None for p in started] == [True]  # the node server is stopped
