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
