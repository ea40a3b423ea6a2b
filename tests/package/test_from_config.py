"""Every payment method builds itself from a configured wallet's settings and secrets
(``from_config``), says which secrets it needs, and refuses bad settings by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mpp_client.methods.config import METHOD_CLASSES, MethodConfigError, SecretField, method_class
from mpp_client.methods.lightning import LightningCharge, LndRestPayer, NwcPayer
from mpp_client.methods.stripe import StripeCharge
from mpp_client.methods.tempo import TempoCharge
from mpp_client.wallet import Secret

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # KEY's account
NWC = "nostr+walletconnect://" + "b" * 64 + "?relay=ws%3A%2F%2F127.0.0.1%3A9&secret=" + "c" * 64


class Store:
    """A key store stand-in that counts reads."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.reads: list[str] = []

    def __call__(self, name: str) -> Secret:
        self.reads.append(name)
        return Secret(self.values[name])


def test_every_method_name_has_a_class_with_a_summary_and_secrets():
    for name in METHOD_CLASSES:
        cls = method_class(name)
        assert cls.name == name
        assert cls.config_summary
        fields = cls.config_secrets({})
        assert fields and all(isinstance(f, SecretField) and f.prompt for f in fields)


def test_tempo_reads_its_key_only_at_the_first_signature():
    store = Store(**{"private-key": KEY})
    tempo = TempoCharge.from_config(
        {"address": ADDRESS, "chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"}, store
    )
    assert tempo.chain_ids == {31337} and tempo.signer.address == ADDRESS
    assert store.reads == []
    assert len(tempo.signer.sign_hash(b"\x01" * 32)) == 65
    assert store.reads == ["private-key"]


def test_tempo_refuses_a_key_for_another_account():
    store = Store(**{"private-key": KEY})
    other = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    tempo = TempoCharge.from_config({"address": other, "chain_id": 31337,
                                     "rpc_url": "http://127.0.0.1:8545"}, store)  # fmt: skip
    from mpp_client.errors import KeyStoreError

    with pytest.raises(KeyStoreError, match="not 0x7099"):
        tempo.signer.sign_hash(b"\x01" * 32)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs the account address"),
        ({"address": ADDRESS, "chain_id": 0}, "chain_id must be a positive integer"),
        ({"address": ADDRESS, "chain_id": True}, "chain_id must be an integer"),
        ({"address": ADDRESS, "modes": "push"}, "modes must be a list of strings"),
        ({"address": ADDRESS, "chain_id": 31337}, "rpc_url: no RPC endpoint known"),
    ],
)
def test_tempo_names_the_bad_setting(settings, message):
    with pytest.raises(MethodConfigError, match=message):
        TempoCharge.from_config(settings, Store())


def test_lightning_builds_the_configured_backend():
    lnd = LightningCharge.from_config(
        {"backend": "lnd", "url": "https://127.0.0.1:8080", "network": "regtest",
         "max_fee_sats": 7},
        Store(secret="ab" * 16),
    )  # fmt: skip
    assert isinstance(lnd._payer, LndRestPayer)
    assert (lnd.network, lnd.max_fee_sats) == ("regtest", 7)
    nwc = LightningCharge.from_config({}, Store(secret=NWC))
    assert isinstance(nwc._payer, NwcPayer) and nwc.network == "mainnet"
    prompts = {b: LightningCharge.config_secrets({"backend": b})[0].prompt for b in ("nwc", "cln")}
    assert "nostr+walletconnect" in prompts["nwc"] and "rune" in prompts["cln"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "eclair", "url": "https://x"}, "unknown lightning backend 'eclair'"),
        ({"backend": "lnd"}, "the lnd backend needs url"),
        ({"backend": "lnd", "url": "https://127.0.0.1:8080", "network": "moon"},
         "the lnd settings or secret are not valid"),
    ],
)  # fmt: skip
def test_lightning_names_the_bad_setting_and_never_the_secret(settings, message):
    with pytest.raises(MethodConfigError, match=message) as raised:
        LightningCharge.from_config(settings, Store(secret="ab" * 16))
    assert "abab" not in str(raised.value)


def test_stripe_and_handcash_need_their_account_settings():
    store = Store(**{"secret-key": "sk_test_cfg", "app-secret": "s3cret", "auth-token": KEY[2:]})
    stripe = StripeCharge.from_config({"payment_method": "pm_card_visa"}, store)
    assert stripe.test_mode and stripe.payment_method == "pm_card_visa"
    with pytest.raises(MethodConfigError, match=r'needs payment_method = "pm_\.\.\."'):
        StripeCharge.from_config({}, store)
    handcash = method_class("handcash").from_config({"app_id": "app"}, store)
    assert "s3cret" not in repr(handcash)
    with pytest.raises(MethodConfigError, match="needs app_id"):
        method_class("handcash").from_config({}, store)
    bad = Store(**{"app-secret": "s3cret", "auth-token": "not-a-key"})
    with pytest.raises(MethodConfigError, match="HandCash settings are not valid") as raised:
        method_class("handcash").from_config({"app_id": "app"}, bad)
    assert "not-a-key" not in str(raised.value)


def test_finding_a_method_imports_only_its_package():
    code = (
        "import sys\n"
        "sys.modules['coincurve'] = None\n"
        "from mpp_client.methods.config import method_class\n"
        "method_class('stripe')\n"
        "print(sorted(m for m in sys.modules if m.startswith('mpp_client.methods.')"
        " and m.count('.') == 2))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['mpp_client.methods.base', 'mpp_client.methods.config', " \
        "'mpp_client.methods.stripe']"  # fmt: skip
