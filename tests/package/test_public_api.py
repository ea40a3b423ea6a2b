"""The public surface is deliberate: pinned here, sorted, and light to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mpp_client

PUBLIC_API = [
    "AlreadyPaid",
    "AsyncPaymentTransport",
    "BudgetExceeded",
    "Challenge",
    "ChallengeExpired",
    "Clock",
    "Credential",
    "CrossOriginPayment",
    "Currency",
    "EffectFailed",
    "EncodingError",
    "FormatError",
    "HumanActionRequired",
    "InsecureOrigin",
    "JournalError",
    "KeyStoreError",
    "Limit",
    "MethodError",
    "MissingExtra",
    "Money",
    "MppError",
    "NoPayableChallenge",
    "NotAllowed",
    "NothingSent",
    "ParseError",
    "PayeeChanged",
    "Payment",
    "PaymentFailed",
    "PaymentHooks",
    "PaymentMethod",
    "PaymentOptions",
    "PaymentOutcomeUnknown",
    "PaymentProof",
    "PaymentRefused",
    "PaymentRejected",
    "PaymentSession",
    "PaymentState",
    "PaymentTransport",
    "PaymentVetoed",
    "PolicyViolation",
    "PriceUnavailable",
    "Problem",
    "ProtocolError",
    "Quote",
    "Receipt",
    "SAT",
    "SessionStream",
    "SessionStreamError",
    "SpendPolicy",
    "UnreplayableBody",
    "UnresolvedPayments",
    "Wallet",
    "payment_of",
    "receipt_of",
    "session_of",
    "usd",
]


def test_all_is_exactly_the_public_api_and_sorted():
    assert mpp_client.__all__ == PUBLIC_API
    assert mpp_client.__all__ == sorted(mpp_client.__all__)


def test_every_public_name_resolves():
    for name in mpp_client.__all__:
        assert getattr(mpp_client, name) is not None, name


def test_importing_the_package_stays_light():
    code = (
        "import sys, mpp_client\n"
        "heavy = {'web3', 'eth_account', 'coincurve', 'requests', 'bolt11', 'keyring',"
        " 'cryptography', 'breez_sdk_spark', 'websockets', 'mpp', 'sqlite3', 'mcp', 'mcp_types'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_protocol_layer_is_pure():
    package = Path(mpp_client.__file__).parent / "protocol"
    for path in package.glob("*.py"):
        assert not _imports(path) & {"httpx", "requests", "socket", "sqlite3"}, path.name


def test_payment_methods_leave_io_to_the_drivers():
    package = Path(mpp_client.__file__).parent / "methods"
    for path in package.rglob("*.py"):
        assert not _imports(path) & {"httpx", "requests", "urllib3"}, path
