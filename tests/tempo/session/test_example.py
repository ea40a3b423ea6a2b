"""examples/tempo_session.py runs as a user runs it and prints what it says it does."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.peers.fixtures import anvil  # noqa: F401  (fixture: anvil installed, or fail with the hint)
from tests.tempo.session.conftest import REPO, compile_escrow


def test_the_session_example_streams_pays_per_chunk_and_refunds(tmp_path, anvil):  # noqa: F811
    compile_escrow()  # the example compiles the same contract: fail (or skip) with the hint
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "tempo_session.py"), "--chunks", "4"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
        env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "price 0.001000 pathUSD per chunk, deposit 0.100000 pathUSD" in out
    assert [line.split()[-2] for line in out.splitlines() if "voucher total" in line] == [
        "1000", "2000", "3000", "4000",
    ]  # fmt: skip
    assert "receipt: accepted 4000 base units" in out
    assert "closed: paid 4000, refunded 96000 base units" in out
