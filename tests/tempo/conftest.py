import sys
from pathlib import Path

# The peer fixtures live in tests/peers; make the repository root importable whether or not
# tests/ is a package and however pytest was started.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.peers.fixtures import (  # noqa: E402, F401  (fixtures)
    anvil,
    mppx_merchant,
    mppx_server,
    pympp_merchant,
    pympp_server,
)
