"""A missing install extra is a ``MissingExtra`` (an ``ImportError``) naming the extra, raised
when the object that needs it is built, never from the middle of a payment.

Each case runs in a fresh interpreter with the extra's modules blocked (``sys.modules[name] =
None`` makes any import of them fail, as if they were not installed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# A valid secp256k1 key (anvil's first dev key) and an NWC URI; nothing here is ever paid.
KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
NWC = "nostr+walletconnect://" + "b" * 64 + "?relay=ws%3A%2F%2F127.0.0.1%3A1&secret=" + "c" * 64

CASES = {
    "requests": (["requests"], "from mpp_client import PaymentSession"),
    "tempo signer": (
        ["coincurve"],
        f"from mpp_client.methods.tempo import LocalKeySigner; LocalKeySigner({KEY!r})",
    ),
    "tempo charge": (
        ["coincurve"],
        "from mpp_client.methods.tempo import TempoCharge\n"
        "class S:\n    address = '0x' + '1' * 40\n"
        "TempoCharge(S(), chain_id=31337, rpc_url='http://127.0.0.1:1')",
    ),
    "lightning": (
        ["bolt11"],
        "from mpp_client.methods.lightning import LightningCharge, LnbitsPayer\n"
        "LightningCharge(LnbitsPayer('http://127.0.0.1:1', 'key'), network='regtest')",
    ),
    "nwc": (
        ["websockets"],
        f"from mpp_client.methods.lightning import NwcPayer; NwcPayer({NWC!r})",
    ),
    "spark": (
        ["breez_sdk_spark"],
        "from mpp_client.methods.lightning import SparkPayer\n"
        "SparkPayer(mnemonic='abandon ' * 11 + 'about', network='regtest', storage_dir='/tmp')",
    ),
    "handcash": (
        ["coincurve"],
        "from mpp_client.methods.handcash import HandCashCharge\n"
        f"HandCashCharge(app_id='app', app_secret='secret', auth_token={KEY!r})",
    ),
    "keyring": (
        ["cryptography"],
        "from mpp_client.wallet import EncryptedFileKeyStore\n"
        "EncryptedFileKeyStore('/tmp/mpp-never-written.keys', passphrase='x')",
    ),
    "mcp": (["mcp"], "from mpp_client.mcp import PaymentSession"),
}

EXTRA_OF = {"tempo signer": "tempo", "tempo charge": "tempo"}


def _run(blocked: list[str], code: str) -> dict[str, object]:
    program = textwrap.dedent(
        """
        import json, sys
        for name in {blocked!r}:
            sys.modules[name] = None
        from mpp_client.errors import MissingExtra
        try:
        {code}
        except MissingExtra as exc:
            print(json.dumps({{"extra": exc.extra, "module": exc.name, "message": str(exc),
                              "import_error": isinstance(exc, ImportError),
                              "money_moved": exc.money_moved}}))
        else:
            print(json.dumps(None))
        """
    ).format(blocked=blocked, code=textwrap.indent(code, "    "))
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_extra_is_named_when_the_object_is_built(case):
    blocked, code = CASES[case]
    extra = EXTRA_OF.get(case, case)
    raised = _run(blocked, code)
    assert raised is not None, f"{case}: built without its extra"
    assert raised["extra"] == extra
    assert raised["module"] == blocked[0]
    assert raised["import_error"] is True
    assert raised["money_moved"] is False
    message = str(raised["message"])
    assert f"pip install -e '.[{extra}]'" in message
    assert f".whl[{extra}]'" in message
    # No registry line: the package is not published yet.
    assert f"pip install 'mpp-client[{extra}]'" not in message


def test_with_every_extra_installed_nothing_is_refused():
    for case, (_, code) in CASES.items():
        if case in ("requests", "mcp"):
            continue
        assert _run([], code) is None, case


def test_the_lightning_extra_is_checked_before_any_request():
    # bolt11 is imported only to decode an invoice: without the check at construction the
    # first sign of a missing extra would come from inside client.get.
    raised = _run(
        ["bolt11"],
        "import httpx\n"
        "from mpp_client import PaymentTransport, Wallet\n"
        "from mpp_client.methods.lightning import LightningCharge, LnbitsPayer\n"
        "wallet = Wallet([LightningCharge(LnbitsPayer('http://127.0.0.1:1', 'k'))],"
        " journal=':memory:')\n"
        "raise SystemExit('built a wallet without bolt11')",
    )
    assert raised is not None and raised["extra"] == "lightning"


def test_importing_method_packages_needs_no_extra():
    code = (
        "import sys\n"
        "for name in ('coincurve', 'tiny_keccak', 'Crypto', 'bolt11', 'websockets', 'cryptography',"
        " 'requests'):\n"
        "    sys.modules[name] = None\n"
        "import mpp_client.methods.tempo, mpp_client.methods.lightning\n"
        "import mpp_client.methods.stripe, mpp_client.methods.handcash\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
