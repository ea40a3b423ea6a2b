"""NWC (NIP-47) payer against a real Nostr relay (nostr-sdk's LocalRelay) and a fake wallet
service written with nostr-sdk, so our own event signing and NIP-04/NIP-44 encryption are
checked by an independent implementation."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpp_client.errors import NothingSent, PaymentOutcomeUnknown, PaymentRefused
from mpp_client.methods.lightning import LightningCharge
from mpp_client.methods.lightning.nwc import NwcConnection, NwcPayer
from mpp_client.runner import run_async, run_sync

from .challenges import charge_request, context, make_challenge
from .effects_driver import run
from .invoices import make_invoice
from .lnbits_server import free_port

ROOT = Path(__file__).resolve().parents[2]
NOSTR_PYTHON = ROOT / ".tools" / "nostr" / "bin" / "python"
SERVICE = Path(__file__).with_name("nwc_wallet_service.py")
WALLET_SECRET = "7f" * 32
CLIENT_SECRET = "3c" * 32


def require_nostr() -> None:
    if not NOSTR_PYTHON.exists():
        message = "nostr-sdk is not installed: run scripts/install-nostr-relay.sh"
        if os.environ.get("MPP_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message)


@dataclass
class WalletService:
    relay_url: str
    wallet_pubkey: str
    ledger_path: Path
    log_path: Path

    def uri(self, relay: str | None = None) -> str:
        return (
            f"nostr+walletconnect://{self.wallet_pubkey}?relay={relay or self.relay_url}"
            f"&secret={CLIENT_SECRET}"
        )

    def answer(self, key: str, entry: dict) -> None:
        ledger = json.loads(self.ledger_path.read_text())
        ledger[key] = entry
        self.ledger_path.write_text(json.dumps(ledger))

    def requests(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


def start_service(tmp_path: Path, encryption_tag: str) -> Iterator[WalletService]:
    require_nostr()
    from mpp_client.methods.lightning import nostr

    port = free_port()
    ledger, log = tmp_path / "ledger.json", tmp_path / "requests.jsonl"
    ledger.write_text("{}")
    process = subprocess.Popen(
        [
            str(NOSTR_PYTHON),
            str(SERVICE),
            str(port),
            WALLET_SECRET,
            str(ledger),
            str(log),
            encryption_tag,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline().decode() if ready else ""
        assert line.startswith("READY "), f"wallet service did not start: {line!r}"
        yield WalletService(
            line.split()[1], nostr.public_key_of(bytes.fromhex(WALLET_SECRET)), ledger, log
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture
def service(tmp_path) -> Iterator[WalletService]:
    yield from start_service(tmp_path, "nip44_v2 nip04")


@pytest.fixture
def nip04_service(tmp_path) -> Iterator[WalletService]:
    yield from start_service(tmp_path, "-")


def pay_through_charge(payer: NwcPayer, invoice, request=None):
    charge = LightningCharge(payer, max_fee_sats=10)
    ctx = context()
    quote = charge.quote(make_challenge(request or charge_request(invoice.text)), ctx)
    return run(charge.pay(quote, ctx))


def test_pays_with_nip44_when_wallet_offers_it(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"preimage": invoice.preimage})
    proof = pay_through_charge(NwcPayer(service.uri()), invoice)
    assert proof.payload == {"preimage": invoice.preimage}
    (request,) = service.requests()
    assert request["method"] == "pay_invoice"
    assert request["params"] == {"invoice": invoice.text}
    assert request["nip44"] is True
    assert request["signature_valid"] is True
    (expiration,) = [t for t in request["tags"] if t[0] == "expiration"]
    assert int(expiration[1]) > request["received_at"]


def test_falls_back_to_nip04_when_wallet_lists_no_encryption(nip04_service):
    invoice = make_invoice(100_000)
    nip04_service.answer(invoice.text, {"preimage": invoice.preimage})
    proof = pay_through_charge(NwcPayer(nip04_service.uri()), invoice)
    assert proof.payload == {"preimage": invoice.preimage}
    (request,) = nip04_service.requests()
    assert request["nip44"] is False
    assert request["signature_valid"] is True


def test_wallet_refusal_before_paying_is_nothing_sent(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"error": "INSUFFICIENT_BALANCE"})
    with pytest.raises(NothingSent) as info:
        pay_through_charge(NwcPayer(service.uri()), invoice)
    assert info.value.money_moved is False
    assert "INSUFFICIENT_BALANCE" in info.value.reason
    assert len(service.requests()) == 1


def test_payment_failed_is_nothing_sent_only_when_the_wallet_shows_it_failed(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"error": "PAYMENT_FAILED"})
    service.answer(invoice.payment_hash, {"state": "failed"})
    with pytest.raises(NothingSent, match="confirmed by a lookup"):
        pay_through_charge(NwcPayer(service.uri()), invoice)
    assert [r["method"] for r in service.requests()] == ["pay_invoice", "lookup_invoice"]


@pytest.mark.parametrize("record", [None, {"state": "pending"}])
def test_payment_failed_that_the_lookup_does_not_confirm_is_outcome_unknown(service, record):
    # NIP-47: PAYMENT_FAILED "may be due to a timeout": HTLCs may still be in flight.
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"error": "PAYMENT_FAILED"})
    if record is not None:
        service.answer(invoice.payment_hash, record)
    with pytest.raises(PaymentOutcomeUnknown, match="did not confirm") as info:
        pay_through_charge(NwcPayer(service.uri()), invoice)
    assert info.value.money_moved is None


def test_wallet_internal_error_is_outcome_unknown(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"error": "INTERNAL"})
    with pytest.raises(PaymentOutcomeUnknown) as info:
        pay_through_charge(NwcPayer(service.uri()), invoice)
    assert info.value.reference == invoice.payment_hash


def test_silent_wallet_is_outcome_unknown_after_timeout_and_request_expires(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"silent": True})
    started = time.monotonic()
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(NwcPayer(service.uri(), timeout=1.5), invoice)
    assert time.monotonic() - started < 10
    (request,) = service.requests()
    (expiration,) = [t for t in request["tags"] if t[0] == "expiration"]
    assert int(expiration[1]) <= request["received_at"] + 2


def test_unreachable_relay_is_nothing_sent(service):
    invoice = make_invoice(100_000)
    payer = NwcPayer(service.uri(relay=f"ws://127.0.0.1:{free_port()}"))
    with pytest.raises(NothingSent) as info:
        pay_through_charge(payer, invoice)
    assert info.value.money_moved is False


def test_refused_challenge_never_reaches_the_wallet(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.text, {"preimage": invoice.preimage})
    with pytest.raises(PaymentRefused):
        pay_through_charge(
            NwcPayer(service.uri()), invoice, charge_request(invoice.text, amount="99")
        )
    assert service.requests() == []


def test_lookup_reports_settled_failed_and_not_found_as_pending(service):
    invoice = make_invoice(100_000)
    service.answer(invoice.payment_hash, {"preimage": invoice.preimage})
    service.answer("cd" * 32, {"state": "failed"})
    payer = NwcPayer(service.uri())
    settled = run(payer.lookup(invoice.payment_hash))
    assert (settled.status, settled.amount) == ("settled", 100)
    assert run(payer.lookup("cd" * 32)).status == "failed"
    # NOT_FOUND: many wallets look up only their own invoices, so it proves nothing
    assert run(payer.lookup("ab" * 32)).status == "pending"
    assert [r["method"] for r in service.requests()] == ["lookup_invoice"] * 3


def test_identity_is_the_wallet_and_connection_public_keys():
    from mpp_client.methods.lightning import nostr

    wallet = "ab" * 32
    payer = NwcPayer(f"nostr+walletconnect://{wallet}?relay=wss://r.example&secret={CLIENT_SECRET}")
    client = nostr.public_key_of(bytes.fromhex(CLIENT_SECRET))
    assert payer.identity == f"nwc:{wallet}/{client}"
    assert CLIENT_SECRET not in payer.identity
    assert LightningCharge(payer).payer("mainnet") == f"lightning:nwc:{wallet}/{client}"


def test_runs_under_the_real_sync_and_async_runners(service):
    import asyncio

    first, second = make_invoice(100_000), make_invoice(100_000)
    service.answer(first.text, {"preimage": first.preimage})
    service.answer(second.text, {"preimage": second.preimage})
    payer = NwcPayer(service.uri())
    assert run_sync(payer.pay(first.text, 10)).preimage == first.preimage
    assert asyncio.run(run_async(payer.pay(second.text, 10))).preimage == second.preimage


# --- the connection URI --------------------------------------------------------------------------


def test_connection_uri_is_parsed_and_secret_redacted():
    wallet = "ab" * 32
    uri = (
        f"nostr+walletconnect://{wallet}?relay=wss%3A%2F%2Frelay.example.com&relay=wss://r2.example"
        f"&secret={CLIENT_SECRET}&lud16=agent%40example.com"
    )
    connection = NwcConnection.parse(uri)
    assert connection.wallet_pubkey == wallet
    assert connection.relays == ("wss://relay.example.com", "wss://r2.example")
    assert connection.lud16 == "agent@example.com"
    payer = NwcPayer(uri)
    assert CLIENT_SECRET not in repr(payer)
    assert CLIENT_SECRET not in repr(connection)


@pytest.mark.parametrize(
    "uri",
    [
        f"https://{'ab' * 32}?relay=wss://r&secret={CLIENT_SECRET}",
        f"nostr+walletconnect://abcd?relay=wss://r&secret={CLIENT_SECRET}",
        f"nostr+walletconnect://{'ab' * 32}?secret={CLIENT_SECRET}",
        f"nostr+walletconnect://{'ab' * 32}?relay=https://r&secret={CLIENT_SECRET}",
        f"nostr+walletconnect://{'ab' * 32}?relay=wss://r&secret={CLIENT_SECRET[:-2]}",
    ],
)
def test_bad_connection_uris_are_rejected_without_echoing_the_secret(uri):
    with pytest.raises(ValueError) as info:
        NwcConnection.parse(uri)
    assert CLIENT_SECRET[:20] not in str(info.value)
