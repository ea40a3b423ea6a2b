"""Suite-wide isolation: nothing a test does touches the developer's real journal, key store
or configuration (a Wallet made without an explicit journal writes to the user data dir)."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="mpp-client-tests-")
for name, sub in (
    ("XDG_DATA_HOME", "data"),
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_STATE_HOME", "state"),
    ("XDG_CACHE_HOME", "cache"),
):
    os.environ[name] = os.path.join(_HOME, sub)
os.environ["MPP_JOURNAL"] = os.path.join(_HOME, "journal.sqlite3")


# --- which tests need a peer ------------------------------------------------------------------
# A test that starts a chain, a reference server, a database or another tool of the install
# scripts is marked `peer` here (whatever its own marks say), so `-m "not peer"` selects the
# tests that need only the package and its test dependencies: what scripts/check-pythons.sh runs
# on the other Python versions.
_PEER_FIXTURES = frozenset(
    {"anvil", "pympp_server", "mppx_server", "pympp_merchant", "mppx_merchant", "pg", "pg_url",
     "empty_url", "migrated", "lnbits", "relay", "chromium"}
)  # fmt: skip
_PEER_NAMES = ("AnvilChain", "find_anvil", "require_lnbits", "require_nostr", "PgCluster",
               "missing", "chromium", "find_chromium")  # fmt: skip


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    import pytest

    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module is not None else {}
        if _PEER_FIXTURES & set(getattr(item, "fixturenames", ())) or any(
            name in names for name in _PEER_NAMES
        ):
            item.add_marker(pytest.mark.peer)  # type: ignore[attr-defined]
