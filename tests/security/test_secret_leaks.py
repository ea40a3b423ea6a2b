"""No secret leaves in text: exceptions (with their chains and captured locals), logs, the
journal file, exports and reprs, for every method and backend, when the backend ECHOES the
request in its error body and when it is DOWN.

Each test pays through a ``Wallet`` with a journal file and the httpx driver, with every
logger captured at DEBUG, then reconciles (so lookups hit the same backend), exports, and
searches everything for every form of every secret (see ``leaks.forms``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp_client import PaymentTransport
from mpp_client.methods.base import PaymentMethod
from mpp_client.methods.handcash import HandCashCharge
from mpp_client.methods.lightning import (
    ClnRestPayer,
    LightningCharge,
    LnbitsPayer,
    LndRestPayer,
    PhoenixdPayer,
)
from mpp_client.methods.lightning.nwc import NwcPayer
from mpp_client.methods.stripe import StripeCharge
from mpp_client.methods.tempo.rpc import rpc_call
from mpp_client.methods.tempo.signer import AccessKeySigner, LocalKeySigner
from mpp_client.runner import run_sync
from mpp_client.testing import FakeMppServer
from mpp_client.testing.server import Offer, Route
from mpp_client.wallet import Wallet
from tests.lightning.invoices import make_invoice

from . import backends
from .leaks import Inspector, forms

# Recognisable fake secrets, one per credential kind (none is a real credential).
LND_MACAROON = "0201036c6e64" + "5ec7e7" * 12 + "deadbeefcafef00d"
CLN_RUNE = "RUNEsecret-cln_" + "Zm9vYmFy" * 4 + "Tm9SdW5l=="
PHOENIXD_PASSWORD = "phoenixd-password-5ecret-771"
LNBITS_KEY = "lnbitsadminkey5ecret" + "0a1b2c3d" * 3
NWC_SECRET = hashlib.sha256(b"mpp-client leak test nwc secret").hexdigest()
STRIPE_KEY = "sk_test_51LeakTest" + "S3cretKey" * 4
HANDCASH_APP_SECRET = "handcash-app-5ecret-" + "q7w8e9r0" * 3
HANDCASH_AUTH_TOKEN = hashlib.sha256(b"mpp-client leak test handcash token").hexdigest()
TEMPO_KEY = "0x" + hashlib.sha256(b"mpp-client leak test tempo key").hexdigest()
RPC_API_KEY = "rpcapikey5ecret" + "a9b8c7d6" * 3

SECRETS: dict[str, set[str]] = {
    "lnd macaroon": forms(LND_MACAROON),
    "cln rune": forms(CLN_RUNE),
    "phoenixd password": forms(PHOENIXD_PASSWORD, basic=[f":{PHOENIXD_PASSWORD}"]),
    "lnbits key": forms(LNBITS_KEY),
    "nwc secret": forms(NWC_SECRET),
    "stripe key": forms(STRIPE_KEY, basic=[f"{STRIPE_KEY}:"]),
    "handcash app secret": forms(HANDCASH_APP_SECRET),
    "handcash auth token": forms(HANDCASH_AUTH_TOKEN),
    "tempo key": forms(TEMPO_KEY),
    "rpc api key": forms(RPC_API_KEY),
}

SERVER = "https://shop.test"


# --- the methods, each on a backend handler ---------------------------------------------------


def lightning(payer_factory: Callable[[], Any]) -> Callable[[], PaymentMethod]:
    return lambda: LightningCharge(payer_factory(), max_fee_sats=10)


LIGHTNING: dict[str, Callable[[], Any]] = {
    "lnd": lambda: LndRestPayer("https://lnd.test:8080", LND_MACAROON),
    "cln": lambda: ClnRestPayer("https://cln.test:3010", CLN_RUNE),
    "phoenixd": lambda: PhoenixdPayer("https://phoenixd.test:9740", PHOENIXD_PASSWORD),
    "lnbits": lambda: LnbitsPayer("https://lnbits.test", LNBITS_KEY),
}

ECHOES: dict[str, tuple[Callable[[str], backends.Handler], list[str]]] = {
    "lnd": (backends.echo_lnd, ["unknown", "refused"]),
    "cln": (backends.echo_cln, ["unknown", "refused", "failed"]),
    "phoenixd": (backends.echo_phoenixd, ["refused", "failed"]),
    "lnbits": (backends.echo_lnbits, ["pending", "refused"]),
}

CASES: list[tuple[str, str]] = []
for _name, (_, _variants) in ECHOES.items():
    CASES += [(_name, f"echo-{v}") for v in _variants]
    CASES += [(_name, "down-connect"), (_name, "down-read")]


def handler_for(backend: str, mode: str) -> backends.Handler:
    if mode.startswith("down-"):
        return backends.down(mode.removeprefix("down-"))
    make = {
        "lnd": backends.echo_lnd,
        "cln": backends.echo_cln,
        "phoenixd": backends.echo_phoenixd,
        "lnbits": backends.echo_lnbits,
        "stripe": backends.echo_stripe,
        "handcash": backends.echo_handcash,
    }[backend]
    return make(mode.removeprefix("echo-"))


def lightning_offer() -> Offer:
    invoice = make_invoice(100_000)
    return Offer(
        amount="100",
        currency="sat",
        method="lightning",
        extra={"methodDetails": {"invoice": invoice.text, "network": "mainnet"}},
    )


def stripe_offer() -> Offer:
    return Offer(
        amount="50",
        currency="usd",
        method="stripe",
        extra={"methodDetails": {"networkId": "profile_seller", "paymentMethodTypes": ["card"]}},
    )


def handcash_offer() -> Offer:
    return Offer(amount="5", currency="usd", method="handcash", recipient="merchant")


# --- one payment, everything it leaves behind ---------------------------------------------------


def pay_and_inspect(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    method: PaymentMethod,
    offer: Offer,
    backend: backends.Handler,
) -> Inspector:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger's records propagate here
    for name in ("httpx", "httpcore", "mpp_client"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    inspector = Inspector(SECRETS)
    server = FakeMppServer({"/paid": Route(offers=(offer,))}, realm="shop.test")
    journal = tmp_path / "journal.sqlite3"
    wallet = Wallet([method], journal=journal)
    io_client = httpx.Client(transport=httpx.MockTransport(backend))
    transport = PaymentTransport(server.mock_transport(), wallet=wallet, io_client=io_client)
    error: BaseException | None = None
    with httpx.Client(transport=transport) as client:
        try:
            response = client.get(f"{SERVER}/paid")
        except Exception as exc:  # what the caller sees
            error = exc
        else:
            from mpp_client import payment_of

            payment = payment_of(response)
            inspector.add("response payment", repr(payment))
            if payment is not None:
                inspector.add("payment refusal", repr(payment.refusal))
                error = payment.error
    assert error is not None, "the backend failed, so the payment must fail"
    inspector.exception("raised", error)
    for record in wallet.payments():
        inspector.object("journal record", record)
    reconciled = wallet.reconcile(client=io_client)
    inspector.add("reconcile", repr(reconciled))
    for record in wallet.payments():
        inspector.object("journal record after reconcile", record)
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        wallet.export(out, format=fmt)  # type: ignore[arg-type]
        inspector.add(f"export {fmt}", out.getvalue())
    inspector.object("method", method)
    inspector.object("wallet", wallet, depth=1)
    wallet.close()
    io_client.close()
    for path in sorted(tmp_path.glob("journal.sqlite3*")):
        inspector.add(f"journal file {path.name}", path.read_bytes().decode("latin-1"))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for index, record in enumerate(caplog.records):
        inspector.add(f"log[{index}] {record.name}", formatter.format(record))
        inspector.add(f"log[{index}] args", repr(record.args))
    return inspector


def assert_no_leaks(inspector: Inspector) -> None:
    leaks = inspector.check()
    assert not leaks, "\n".join(leaks[:20])


@pytest.mark.parametrize(("backend", "mode"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_lightning_backends_never_leak(tmp_path, caplog, backend, mode):
    method = lightning(LIGHTNING[backend])()
    inspector = pay_and_inspect(
        tmp_path, caplog, method, lightning_offer(), handler_for(backend, mode)
    )
    assert_no_leaks(inspector)


@pytest.mark.parametrize("mode", ["echo-refused", "echo-unknown", "down-connect", "down-read"])
def test_stripe_never_leaks(tmp_path, caplog, mode):
    method = StripeCharge(STRIPE_KEY, payment_method="pm_card_visa", api_base="https://stripe.test")
    inspector = pay_and_inspect(
        tmp_path, caplog, method, stripe_offer(), handler_for("stripe", mode)
    )
    assert_no_leaks(inspector)


@pytest.mark.parametrize(
    ("mode", "check_spendable"),
    [
        ("echo-balance", True),
        ("echo-refused", False),
        ("echo-unknown", False),
        ("down-connect", False),
        ("down-read", False),
        ("down-read", True),
    ],
)
def test_handcash_never_leaks(tmp_path, caplog, mode, check_spendable):
    method = HandCashCharge(
        app_id="app-leak-test",
        app_secret=HANDCASH_APP_SECRET,
        auth_token=HANDCASH_AUTH_TOKEN,
        base_url="https://handcash.test",
        check_spendable=check_spendable,
    )
    inspector = pay_and_inspect(
        tmp_path, caplog, method, handcash_offer(), handler_for("handcash", mode)
    )
    assert_no_leaks(inspector)


class EchoingNwcPayer(NwcPayer):
    """An NWC payer whose wallet service answers every request with an error that echoes the
    connection's secret (a wallet service knows it: it issued the connection)."""

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        import base64

        raw = bytes.fromhex(NWC_SECRET)
        echo = (
            f"secret={NWC_SECRET} {NWC_SECRET.upper()} {base64.b64encode(raw).decode()} "
            f"nostr+walletconnect://{'ab' * 32}?relay=wss://r&secret={NWC_SECRET} {params}"
        )
        return {"error": {"code": "OTHER", "message": echo}}


def test_nwc_never_leaks(tmp_path, caplog):
    uri = f"nostr+walletconnect://{'ab' * 32}?relay=wss://relay.test&secret={NWC_SECRET}"
    method = LightningCharge(EchoingNwcPayer(uri), max_fee_sats=10)
    inspector = pay_and_inspect(
        tmp_path, caplog, method, lightning_offer(), backends.down("connect")
    )
    assert_no_leaks(inspector)


def _rpc_failure(mode: str) -> BaseException:
    # The URL (with its key) lives only in this helper's frame, not in the test's.
    url = f"https://rpc.test/v2/{RPC_API_KEY}?key={RPC_API_KEY}"

    def echo(request: httpx.Request) -> httpx.Response:
        text = backends.echo_text(request)
        error = {"code": -32000, "message": text}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "error": error})

    handler = echo if mode == "echo" else backends.down(mode.removeprefix("down-"))
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        try:
            run_sync(rpc_call(url, "eth_chainId", []), client)
        except Exception as exc:
            return exc
    raise AssertionError("the RPC call must fail")


@pytest.mark.parametrize("mode", ["echo", "down-connect", "down-read"])
def test_tempo_rpc_and_signers_never_leak(caplog, mode):
    caplog.set_level(logging.DEBUG)
    failure = _rpc_failure(mode)
    # An API key inside the RPC URL: out of the message and the standard traceback. (Frames
    # that take the URL as an argument show it in captured locals, and httpx logs request
    # URLs at INFO: see docs/security.md, "Secrets".)
    url_key = Inspector({"rpc api key": SECRETS["rpc api key"]})
    url_key.add("rpc error str", str(failure))
    url_key.add("rpc error traceback", "".join(traceback.format_exception(failure)))
    assert_no_leaks(url_key)
    inspector = Inspector({k: v for k, v in SECRETS.items() if k != "rpc api key"})
    inspector.exception("rpc error", failure)
    local = LocalKeySigner(TEMPO_KEY)
    access = AccessKeySigner(TEMPO_KEY, "0x" + "11" * 20)
    for name, signer in (("local", local), ("access", access)):
        inspector.object(f"{name} signer", signer)
        with pytest.raises(ValueError) as bad:
            signer.sign_hash(b"not 32 bytes")
        inspector.exception(f"{name} signer error", bad.value)
    for index, record in enumerate(caplog.records):
        inspector.add(f"log[{index}]", record.getMessage())
    assert_no_leaks(inspector)


def test_reprs_and_vars_of_every_method_and_payer():
    inspector = Inspector(SECRETS)
    uri = f"nostr+walletconnect://{'ab' * 32}?relay=wss://relay.test&secret={NWC_SECRET}"
    nwc = NwcPayer(uri)
    objects: dict[str, object] = {name: make() for name, make in LIGHTNING.items()}
    objects |= {
        "nwc": nwc,
        "nwc connection": nwc._connection,
        "lightning charge": LightningCharge(nwc),
        "stripe": StripeCharge(STRIPE_KEY, payment_method="pm_card_visa"),
        "handcash": HandCashCharge(
            app_id="app", app_secret=HANDCASH_APP_SECRET, auth_token=HANDCASH_AUTH_TOKEN
        ),
        "tempo local signer": LocalKeySigner(TEMPO_KEY),
    }
    for name, obj in objects.items():
        inspector.object(name, obj)
    assert_no_leaks(inspector)
