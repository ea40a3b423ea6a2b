"""Every ```python block of README.md and docs/ runs as written.

Each block (with the ``<!-- snippet: continue -->`` blocks after it) runs in a fresh
interpreter, in an empty directory, against a ``FakeMppServer`` on 127.0.0.1 that stands in
for ``https://api.example.com`` (the only text changed before running). The secrets the docs
read from the environment are set to throwaway values; nothing reaches a real network or moves
money: the fake server only offers ``test`` challenges, which the documented methods do not
pay, so those requests come back unpaid, and the blocks that pay use ``TestMethod``. Blocks
marked ``<!-- snippet: chain -->`` start a local anvil chain themselves; blocks that cannot run
here carry ``<!-- snippet: skip REASON -->`` and are only compiled, listed by
``test_skipped_snippet_has_a_reason_and_compiles``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mpp_client.testing import FakeMppServer, Route
from tests.docs.snippets import all_snippets, groups

HERE = Path(__file__).resolve().parent
PLACEHOLDER_ORIGIN = "https://api.example.com"
_PATH = re.compile(re.escape(PLACEHOLDER_ORIGIN) + r"(/[A-Za-z0-9_\-/.]*)")

# Throwaway values for what the docs read from the environment (anvil's first dev key; none of
# them is ever used against a real service).
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DOC_ENVIRONMENT = {
    "TEMPO_PRIVATE_KEY": DEV_KEY,
    "NWC_URI": "nostr+walletconnect://"
    + "b" * 64
    + "?relay=ws%3A%2F%2F127.0.0.1%3A9&secret="
    + "c" * 64,
    "SPARK_MNEMONIC": " ".join(["abandon"] * 11 + ["about"]),
    "BREEZ_API_KEY": "docs-breez-key",
    "STRIPE_SECRET_KEY": "sk_test_docs",
    "HANDCASH_APP_ID": "docs-app",
    "HANDCASH_APP_SECRET": "docs-app-secret",
    "HANDCASH_AUTH_TOKEN": DEV_KEY[2:],
    "SHOP_HANDCASH_TOKEN": "d" * 64,
    "MPP_KEYSTORE": "file",
    "MPP_KEYSTORE_PASSPHRASE": "docs-passphrase",
}

GROUPS = groups()


def _paths() -> set[str]:
    found = {"/report"}
    for snippet in all_snippets():
        found |= set(_PATH.findall(snippet.code))
    return found


@pytest.fixture(scope="module")
def fake_api():
    server = FakeMppServer({path: Route() for path in _paths()}, realm="api.example.com")
    with server.serve() as base:
        yield base


def _marks(group):
    return [pytest.mark.chain] if group.chain else []


@pytest.mark.parametrize("group", [pytest.param(g, id=g.name, marks=_marks(g)) for g in GROUPS])
def test_snippet_runs(group, fake_api, tmp_path):
    if group.chain:
        from mpp_client.testing.anvil import AnvilNotFound, find_anvil
        from tests.peers.fixtures import missing

        try:
            find_anvil()
        except AnvilNotFound:
            missing("anvil", "bash scripts/install-anvil.sh")
    blocks = [
        {"name": s.name, "code": s.code.replace(PLACEHOLDER_ORIGIN, fake_api)}
        for s in group.snippets
    ]
    job = {"blocks": blocks, "seed_keystore": {"tempo/main": DEV_KEY}}
    env = {
        **os.environ,
        **DOC_ENVIRONMENT,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "MPP_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "PYTHONPATH": str(HERE.parents[1]),
    }
    done = subprocess.run(
        [sys.executable, str(HERE / "run_snippets.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count(" ok\n") == len(blocks)


SKIPPED = [s for s in all_snippets() if s.skip is not None]


@pytest.mark.parametrize(
    "snippet", [pytest.param(s, id=f"{s.name} skip: {s.skip}") for s in SKIPPED]
)
def test_skipped_snippet_has_a_reason_and_compiles(snippet):
    assert len(snippet.skip or "") >= 10, f"{snippet.name}: say why it cannot run here"
    compile(snippet.code, snippet.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_docs_have_snippets_and_most_of_them_run():
    every = all_snippets()
    assert len(every) >= 20
    # Skipping is for what truly cannot run offline, not a way out of fixing a block.
    assert len(SKIPPED) <= len(every) // 4, [s.name for s in SKIPPED]
