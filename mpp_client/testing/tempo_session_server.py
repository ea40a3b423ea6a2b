"""``TempoSessionServer``: a Tempo session (v1, escrow contract) server for tests and demos.

Written from the session spec (README §14), it does what a real server must: HMAC-bound
challenges, ``open`` (broadcasts the payer's approve + open transaction and reads the channel
back from the escrow), ``voucher`` (each cumulative amount checked against the escrow's own
``getVoucherDigest`` and the channel's signer, low-s), ``topUp`` (broadcast, deposit read back),
``close`` (the payee's ``close`` transaction on chain, receipt with ``txHash``), 410
``channel-not-found``, and metered ``text/event-stream`` resources that pause with
``event: payment-need-voucher`` when the accepted amount is used up and end with
``event: payment-receipt``. ``MPP_SESSION_SERVER_LOG=1`` prints each answer's status and
problem (never payloads) on stderr. State is kept in a JSON file, so a server started again on the
same file (a restart) knows its channels.

Routes (GET): ``/stream?n=<chunks>`` (SSE, one unit per chunk), ``/paid`` (one unit per
request). ``HEAD`` of any route answers a fresh 402 challenge; a bodyless ``POST`` carrying a
``voucher``/``topUp``/``close`` credential is answered 200 with a receipt and no body.

The escrow: ``escrow_artifact()`` compiles our own v1 escrow (Solidity source in the checkout's
``tests/tempo/session/contracts``) with solc-js (``scripts/install-solc.sh``), cached by source
hash; ``deploy(chain, bytecode)`` deploys it on an ``AnvilChain`` and returns its address.

Misbehaviour for tests: ``overcharge`` multiplies what a streamed unit costs (the server
advertises ``price`` and charges ``price * overcharge``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mpp_client.clock import SYSTEM_CLOCK, Clock, utcnow
from mpp_client.methods.tempo.escrow import (
    close_data,
    decode_channel,
    get_channel_data,
    get_voucher_digest_data,
)
from mpp_client.methods.tempo.proof import proof_digest
from mpp_client.methods.tempo.signer import LocalKeySigner, recover_address
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.methods.tempo.transaction import (
    EXPIRING_NONCE_KEY,
    Call,
    TempoTransaction,
    address_bytes,
    decode_fee_payer_envelope,
)
from mpp_client.methods.tempo.voucher import check_low_s, voucher_digest
from mpp_client.protocol import (
    Challenge,
    Receipt,
    compute_challenge_id,
    format_timestamp,
    parse_credential,
)
from mpp_client.testing.anvil import DEV_KEYS, AnvilChain

__all__ = [
    "EscrowToolsMissing",
    "SeenRequest",
    "TempoSessionServer",
    "deploy",
    "escrow_artifact",
]

PROBLEMS = "https://paymentauth.org/problems/"
_CHECKOUT = Path(__file__).resolve().parents[2]
_CONTRACTS = _CHECKOUT / "tests" / "tempo" / "session" / "contracts"
_SOLC = _CHECKOUT / ".tools" / "solc"


class EscrowToolsMissing(RuntimeError):
    """node or solc-js is not installed (run ``scripts/install-solc.sh``)."""


def escrow_artifact() -> dict[str, Any]:
    """``{"abi": [...], "bytecode": "0x..."}`` of the test escrow, compiled by solc-js and
    cached per source hash in ``.tools/solc/build``."""
    contract, compiler = _CONTRACTS / "StreamChannelEscrow.sol", _CONTRACTS / "compile.mjs"
    key = hashlib.sha256(contract.read_bytes() + compiler.read_bytes()).hexdigest()[:16]
    cache = _SOLC / "build" / f"escrow-{key}.json"
    if cache.exists():
        found: dict[str, Any] = json.loads(cache.read_text())
        return found
    if not (_SOLC / "node_modules" / "solc" / "package.json").exists() or not shutil.which("node"):
        raise EscrowToolsMissing("solc-js is not installed: run scripts/install-solc.sh")
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["node", str(compiler), str(_SOLC), str(contract)],  # noqa: S607
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    artifact: dict[str, Any] = json.loads(out.stdout)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(artifact))
    return artifact


def deploy(chain: AnvilChain, bytecode: str, *, clock: Clock = SYSTEM_CLOCK) -> str:
    """Deploy ``bytecode`` from anvil dev account #1 (a ``0x76`` CREATE call); returns the
    contract address (lower case). ``clock`` is the local side of the transaction's expiry
    (anvil's own block time may run ahead of it, and the later of the two is used)."""
    dev = LocalKeySigner(DEV_KEYS[1])
    tx = TempoTransaction(
        chain_id=chain.chain_id,
        calls=(Call(b"", 0, bytes.fromhex(bytecode.removeprefix("0x"))),),
        gas_limit=25_000_000,
        max_fee_per_gas=2 * chain.gas_price(),
        nonce_key=EXPIRING_NONCE_KEY,
        valid_before=max(int(clock.time()), chain.chain_time()) + 20,
        fee_token=address_bytes(PATH_USD.address),
    )
    raw = tx.encode(dev.sign_hash(tx.signing_hash()))
    receipt = chain.rpc("eth_sendRawTransactionSync", "0x" + raw.hex())
    if receipt.get("status") != "0x1":
        raise RuntimeError("the escrow deployment reverted")
    return str(receipt["contractAddress"]).lower()


#: Longest a stream waits for a voucher before it ends (seconds).
VOUCHER_WAIT = 60.0


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server saw it: ``connection`` numbers the TCP connection (in accept
    order), ``framing`` is ``"length"``, ``"chunked"`` or ``"none"``, ``streamed`` whether the
    answer was an event stream."""

    connection: int
    method: str
    path: str
    framing: str
    streamed: bool


@dataclass
class _Channel:
    payer: str
    signer: str
    deposit: int
    accepted: int = 0
    spent: int = 0
    units: int = 0
    voucher: str = ""
    closed: bool = False
    salt: str = ""


@dataclass
class TempoSessionServer:
    """A session server paying ``payee`` through ``escrow`` on ``chain`` (see the module
    docstring). ``price`` is base units per unit; ``units_per_voucher`` how many units one
    ``payment-need-voucher`` asks for. ``state_path``: the JSON state file (restarts)."""

    chain: AnvilChain
    escrow: str
    token: str
    payee: LocalKeySigner
    price: int = 1_000
    suggested_deposit: int = 100_000
    units_per_voucher: int = 1
    overcharge: int = 1
    realm: str = "tempo-session.test"
    state_path: str | None = None
    challenge_ttl: float = 900.0
    #: Where the server's time comes from (challenge expiry, receipt timestamps).
    clock: Clock = SYSTEM_CLOCK
    #: After the open, check vouchers off chain (EIP-712 digest computed here, signature,
    #: cumulative) as a production server does, instead of asking the escrow's
    #: ``getVoucherDigest`` each time: benchmarks use it to measure the client, not anvil.
    offchain_vouchers: bool = False
    #: Sponsor the payer's open and topUp transactions (``feePayer: true`` in the challenge):
    #: the server decodes the payer's ``0x78`` hand-off, checks its sender signature, co-signs
    #: paying the fee in ``token`` from this account, and broadcasts the ``0x76``.
    fee_payer: LocalKeySigner | None = None
    #: The spec's bootstrap preflight: a ``HEAD`` without a credential is also offered a
    #: zero-amount ``tempo``/``charge`` challenge; a valid proof for it is answered 204 with
    #: ``Payment-Session`` and ``Payment-Session-Snapshot`` (the prover's newest open channel,
    #: with its highest voucher; a v1 snapshot: operator and expiringNonceHash zero).
    bootstrap: bool = False
    #: With ``bootstrap``: a ``HEAD`` without a credential is offered ONLY the zero-amount
    #: ``charge`` challenge, as mppx's preflight does (a client then asks for the session
    #: challenge another way).
    bootstrap_only: bool = False
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    #: Every credential action seen, in order (``open``, ``voucher``, ``topUp``, ``close``).
    actions: list[str] = field(default_factory=list)
    #: Every request served, in order: which connection carried it and how its body was framed.
    requests: list[SeenRequest] = field(default_factory=list)
    #: Request lines the server could not parse (bytes a client left on a connection, e.g. an
    #: unannounced body); a correct client leaves this empty.
    unparsed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.escrow = self.escrow.lower()
        self.token = self.token.lower()
        self._lock = threading.Condition()
        self._channels: dict[str, _Channel] = {}
        self._used: set[str] = set()
        if self.state_path and os.path.exists(self.state_path):
            with open(self.state_path, encoding="utf-8") as handle:
                data = json.load(handle)
            self._channels = {k: _Channel(**v) for k, v in data["channels"].items()}
            self._used = set(data["used"])
        self._httpd: ThreadingHTTPServer | None = None
        self._sockets: set[Any] = set()
        self._accepted = 0

    # --- state ---------------------------------------------------------------------------------

    def _save(self) -> None:
        if not self.state_path:
            return
        data = {
            "channels": {k: vars(v) for k, v in self._channels.items()},
            "used": sorted(self._used),
        }
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.state_path)

    def channel(self, channel_id: str) -> _Channel | None:
        """What the server knows of ``channel_id``."""
        with self._lock:
            return self._channels.get(channel_id.lower())

    # --- challenges and receipts ---------------------------------------------------------------

    def challenge(self) -> Challenge:
        """A fresh session challenge (HMAC-bound id)."""
        request = {
            "amount": str(self.price),
            "currency": self.token,
            "recipient": self.payee.address.lower(),
            "suggestedDeposit": str(self.suggested_deposit),
            "unitType": "chunk",
            "methodDetails": {
                "chainId": self.chain.chain_id,
                "escrowContract": self.escrow,
                "sessionProtocol": "v1",
                **({"feePayer": True} if self.fee_payer is not None else {}),
            },
        }
        expires = format_timestamp(utcnow(self.clock) + timedelta(seconds=self.challenge_ttl))
        draft = Challenge.create(
            id="x", realm=self.realm, method="tempo", intent="session", request=request,
            expires=expires,
        )  # fmt: skip
        challenge_id = compute_challenge_id(
            self.secret, realm=self.realm, method="tempo", intent="session",
            request=draft.request, expires=expires,
        )  # fmt: skip
        return Challenge.create(
            id=challenge_id, realm=self.realm, method="tempo", intent="session",
            request=request, expires=expires,
        )  # fmt: skip

    def _bootstrap_challenge(self) -> Challenge:
        """A zero-amount ``tempo``/``charge`` challenge asking the payer to prove identity."""
        request = {
            "amount": "0", "currency": self.token, "recipient": self.payee.address.lower(),
            "methodDetails": {"chainId": self.chain.chain_id},
        }  # fmt: skip
        expires = format_timestamp(utcnow(self.clock) + timedelta(seconds=self.challenge_ttl))
        draft = Challenge.create(
            id="x", realm=self.realm, method="tempo", intent="charge", request=request,
            expires=expires,
        )  # fmt: skip
        challenge_id = compute_challenge_id(
            self.secret, realm=self.realm, method="tempo", intent="charge",
            request=draft.request, expires=expires,
        )  # fmt: skip
        return Challenge.create(
            id=challenge_id, realm=self.realm, method="tempo", intent="charge",
            request=request, expires=expires,
        )  # fmt: skip

    def _preflight(self, value: str) -> Any:
        """The bootstrap answer to a ``HEAD`` (``None``: not a bootstrap request)."""
        if not value.lower().startswith("payment "):
            offered = self._bootstrap_challenge().to_header()
            if not self.bootstrap_only:
                offered = self.challenge().to_header() + ", " + offered
            return 402, [("www-authenticate", offered), ("cache-control", "no-store")], b""
        try:
            credential = parse_credential(value)
        except Exception:
            return None
        echo = credential.challenge
        if echo.intent != "charge":
            return None
        source = credential.source or ""
        address = source.rsplit(":", 1)[-1].lower()
        signature = str(credential.payload.get("signature", ""))
        try:
            digest = proof_digest(self.chain.chain_id, address, echo.id, echo.realm)
            proven = recover_address(digest, bytes.fromhex(signature[2:])).lower() == address
        except ValueError:
            proven = False
        if (
            not self._valid_challenge(echo) or credential.payload.get("type") != "proof"
            or not source.startswith(f"did:pkh:eip155:{self.chain.chain_id}:") or not proven
        ):  # fmt: skip
            return self._payment_required("verification-failed")
        with self._lock:
            mine = [
                (k, c) for k, c in self._channels.items() if c.payer == address and not c.closed
            ]
        headers: list[tuple[str, str]] = [("cache-control", "no-store")]
        if mine and mine[-1][1].voucher:
            channel_id, state = mine[-1]
            onchain = self._onchain(channel_id)
            snapshot = {
                "acceptedCumulative": str(state.accepted), "chainId": self.chain.chain_id,
                "channelId": channel_id, "deposit": str(onchain.deposit),
                "descriptor": {
                    "payer": state.payer, "payee": self.payee.address.lower(),
                    "operator": "0x" + "0" * 40, "token": self.token, "salt": state.salt,
                    "authorizedSigner": onchain.authorized_signer,
                    "expiringNonceHash": "0x" + "0" * 64,
                },
                "escrow": self.escrow,
                "highestVoucher": {"channelId": channel_id,
                                   "cumulativeAmount": str(state.accepted),
                                   "signature": state.voucher},
                "requiredCumulative": str(state.accepted), "settled": str(onchain.settled),
                "spent": str(state.spent), "units": state.units,
            }  # fmt: skip
            from mpp_client.protocol.base64url import b64url_encode

            encoded = b64url_encode(json.dumps(snapshot, separators=(",", ":")).encode())
            headers += [("payment-session", channel_id), ("payment-session-snapshot", encoded)]
        return 204, headers, b""

    def _receipt(self, challenge_id: str, channel_id: str, tx: str | None = None) -> str:
        state = self._channels[channel_id]
        extra: dict[str, Any] = {
            "intent": "session",
            "channelId": channel_id,
            "acceptedCumulative": str(state.accepted),
            "spent": str(state.spent),
            "units": state.units,
        }
        if tx:
            extra["txHash"] = tx
        return Receipt(
            status="success", method="tempo", timestamp=format_timestamp(utcnow(self.clock)),
            reference=channel_id, challenge_id=challenge_id, extra=extra,
        ).encode()  # fmt: skip

    # --- verification --------------------------------------------------------------------------

    def _valid_challenge(self, echo: Challenge) -> bool:
        expected = compute_challenge_id(
            self.secret, realm=echo.realm, method=echo.method, intent=echo.intent,
            request=echo.request, expires=echo.expires,
        )  # fmt: skip
        if echo.id != expected or echo.realm != self.realm:
            return False
        expires = echo.expires_at
        return expires is None or expires > utcnow(self.clock)

    def _onchain(self, channel_id: str) -> Any:
        result = self.chain.rpc(
            "eth_call",
            {"to": self.escrow, "data": "0x" + get_channel_data(channel_id).hex()},
            "latest",
        )
        return decode_channel(result)

    def _check_voucher(self, channel_id: str, state: _Channel, cumulative: int, sig: str) -> str:
        """``""`` when the voucher is good, else the problem type."""
        if cumulative > state.deposit:
            return "session/amount-exceeds-deposit"
        raw = bytes.fromhex(sig.removeprefix("0x"))
        try:
            check_low_s(raw)
        except ValueError:
            return "session/invalid-signature"
        if self.offchain_vouchers:
            chain_id = self.chain.chain_id
            digest = (
                "0x" + voucher_digest("v1", chain_id, self.escrow, channel_id, cumulative).hex()
            )
        else:
            data = get_voucher_digest_data(channel_id, cumulative)
            digest = self.chain.rpc(
                "eth_call", {"to": self.escrow, "data": "0x" + data.hex()}, "latest"
            )
        try:
            signer = recover_address(bytes.fromhex(digest[2:]), raw).lower()
        except ValueError:
            return "session/invalid-signature"
        if signer != state.signer:
            return "session/signer-mismatch"
        return ""

    def _co_sign(self, raw: str) -> str | None:
        """The broadcastable ``0x76`` of a payer's ``0x78`` hand-off, co-signed by
        ``fee_payer`` (``None``: not a valid hand-off, or this server does not sponsor)."""
        if self.fee_payer is None:
            return None
        try:
            tx, sender, signature = decode_fee_payer_envelope(
                bytes.fromhex(raw.removeprefix("0x")), address_bytes(self.token)
            )
            if recover_address(tx.signing_hash(), signature).lower() != "0x" + sender.hex():
                return None
            # Sponsor only calls on the channel's token and escrow (approve, open, topUp).
            if any("0x" + call.to.hex() not in (self.token, self.escrow) for call in tx.calls):
                return None
        except ValueError:
            return None
        co_signature = self.fee_payer.sign_raw_hash(tx.fee_payer_signing_hash(sender))
        return "0x" + tx.encode(signature, co_signature).hex()

    def _broadcast(self, raw: str) -> dict[str, Any] | None:
        if raw.startswith("0x78"):
            sponsored = self._co_sign(raw)
            if sponsored is None:
                return None
            raw = sponsored
        try:
            receipt: dict[str, Any] = self.chain.rpc("eth_sendRawTransactionSync", raw)
        except RuntimeError as exc:
            if os.environ.get("MPP_SESSION_SERVER_LOG"):
                print("server broadcast:", exc, file=__import__("sys").stderr)
            return None
        if receipt.get("status") != "0x1" and os.environ.get("MPP_SESSION_SERVER_LOG"):
            print("server reverted:", receipt.get("gasUsed"), file=sys.stderr)
        return receipt if receipt.get("status") == "0x1" else None

    # --- handling ------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str]) -> Any:
        """One request: ``(status, headers, body)`` where body may be an iterator (a stream)."""
        path = urlsplit(target).path
        query = parse_qs(urlsplit(target).query)
        value = headers.get("authorization", "")
        if method == "HEAD" and self.bootstrap:
            answer = self._preflight(value)
            if answer is not None:
                return answer
        if not value.lower().startswith("payment "):
            return self._payment_required("payment-required")
        try:
            credential = parse_credential(value)
        except Exception:
            return self._payment_required("malformed-credential")
        if not self._valid_challenge(credential.challenge):
            return self._payment_required("invalid-challenge")
        payload = credential.payload
        action = payload.get("action")
        channel_id = str(payload.get("channelId", "")).lower()
        self.actions.append(str(action))
        if action == "open":
            problem = self._open(credential.challenge.id, payload, credential.source)
        elif action == "topUp":
            problem = self._top_up(credential.challenge.id, payload)
        elif action in ("voucher", "close"):
            problem = self._voucher(channel_id, payload)
        else:
            return self._payment_required("malformed-credential")
        if problem and os.environ.get("MPP_SESSION_SERVER_LOG"):
            print("server problem:", action, problem, file=sys.stderr)
        if problem:
            status = (
                410
                if problem in ("session/channel-not-found", "session/channel-finalized")
                else 402
            )
            return self._payment_required(problem, status=status)
        tx = None
        if action == "close":
            tx = self._close(channel_id)
            if tx is None:
                return 500, [("content-type", "text/plain")], b"close failed"
        receipt = self._receipt(credential.challenge.id, channel_id, tx)
        paid = [("payment-receipt", receipt), ("cache-control", "private")]
        if (method in ("HEAD", "POST") and action != "open") or action == "close":
            return 200, paid, b""
        if path == "/stream":
            count = int(query.get("n", ["10"])[0])
            return (
                200,
                [*paid, ("content-type", "text/event-stream")],
                self._stream(channel_id, count, credential.challenge.id),
            )
        # A request/response resource: one unit per request.
        with self._lock:
            state = self._channels[channel_id]
            if state.spent + self.price > state.accepted:
                return self._payment_required("session/insufficient-balance")
            state.spent += self.price
            state.units += 1
            self._save()
            receipt = self._receipt(credential.challenge.id, channel_id)
        return 200, [("payment-receipt", receipt), ("content-type", "text/plain")], b"paid content"

    def _payment_required(self, problem: str, status: int = 402) -> Any:
        body = json.dumps({"type": PROBLEMS + problem, "title": problem, "status": status}).encode()
        headers = [("content-type", "application/problem+json"), ("cache-control", "no-store")]
        if status == 402:
            headers.append(("www-authenticate", self.challenge().to_header()))
        return status, headers, body

    def _open(self, challenge_id: str, payload: Any, source: str | None) -> str:
        if payload.get("type") != "transaction" or challenge_id in self._used:
            return "invalid-challenge" if challenge_id in self._used else "malformed-credential"
        channel_id = str(payload.get("channelId", "")).lower()
        if self._broadcast(str(payload.get("transaction"))) is None:
            return "verification-failed"
        onchain = self._onchain(channel_id)
        if (
            not onchain.exists
            or onchain.payee != self.payee.address.lower()
            or onchain.token != self.token
            or onchain.finalized
        ):
            return "session/channel-not-found"
        signer = onchain.authorized_signer
        if signer == "0x" + "0" * 40:
            signer = onchain.payer
        with self._lock:
            self._used.add(challenge_id)
            self._channels[channel_id] = _Channel(
                onchain.payer, signer, onchain.deposit, salt=_open_salt(payload, self.escrow)
            )
            self._save()
        return self._voucher(channel_id, payload)

    def _top_up(self, challenge_id: str, payload: Any) -> str:
        channel_id = str(payload.get("channelId", "")).lower()
        state = self.channel(channel_id)
        if state is None:
            return "session/channel-not-found"
        if challenge_id in self._used:
            return "invalid-challenge"
        if self._broadcast(str(payload.get("transaction"))) is None:
            return "verification-failed"
        onchain = self._onchain(channel_id)
        with self._lock:
            self._used.add(challenge_id)
            state.deposit = onchain.deposit
            self._save()
            self._lock.notify_all()
        return ""

    def _voucher(self, channel_id: str, payload: Any) -> str:
        state = self.channel(channel_id)
        if state is None:
            return "session/channel-not-found"
        if state.closed:
            return "session/channel-finalized"
        raw = payload.get("cumulativeAmount")
        if not isinstance(raw, str) or not raw.isdigit():
            return "malformed-credential"
        cumulative = int(raw)
        if cumulative < state.accepted:
            return "session/delta-too-small"
        if cumulative == state.accepted and state.voucher:
            return ""  # an idempotent resend
        problem = self._check_voucher(channel_id, state, cumulative, str(payload.get("signature")))
        if problem:
            return problem
        with self._lock:
            if cumulative > state.accepted:
                state.accepted = cumulative
                state.voucher = str(payload.get("signature"))
                self._save()
            self._lock.notify_all()
        return ""

    def _close(self, channel_id: str) -> str | None:
        state = self.channel(channel_id)
        assert state is not None
        signature = bytes.fromhex(state.voucher.removeprefix("0x"))
        try:
            receipt = self.chain.send(
                self.payee,
                [(self.escrow, close_data(channel_id, state.accepted, signature))],
                fee_token=self.token,
            )
        except RuntimeError:
            return None
        with self._lock:
            state.closed = True
            self._save()
        return str(receipt["transactionHash"])

    def _stream(self, channel_id: str, count: int, challenge_id: str) -> Iterator[bytes]:
        cost = self.price * self.overcharge
        for index in range(count):
            with self._lock:
                state = self._channels[channel_id]
                need = None
                if state.spent + cost > state.accepted:
                    required = state.spent + cost * self.units_per_voucher
                    need = {
                        "channelId": channel_id,
                        "requiredCumulative": str(required),
                        "acceptedCumulative": str(state.accepted),
                        "deposit": str(state.deposit),
                    }
            if need is not None:
                yield b"event: payment-need-voucher\ndata: " + json.dumps(need).encode() + b"\n\n"
                deadline = time.monotonic() + VOUCHER_WAIT
                with self._lock:
                    while state.spent + cost > state.accepted:
                        left = deadline - time.monotonic()
                        if left <= 0 or self._httpd is None:
                            return  # no voucher came (or the server stops): the stream ends
                        self._lock.wait(min(left, 0.5))
            with self._lock:
                state.spent += cost
                state.units += 1
                self._save()
            yield f"id: {index}\ndata: chunk {index}\n\n".encode()
        with self._lock:
            receipt = self._receipt(challenge_id, channel_id)
        document = json.loads(_b64decode(receipt))
        yield b"event: payment-receipt\ndata: " + json.dumps(document).encode() + b"\n\n"

    # --- serving -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[str]:
        """Serve on ``http://127.0.0.1:<port>`` in background threads; yields the base URL."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            number = 0  # this connection's number, in accept order

            def setup(self) -> None:
                super().setup()
                # As production servers do (Node's http, hyper): without it, a small write
                # after the headers waits for the client's delayed ACK (~40 ms on Linux).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                server._sockets.add(self.connection)
                with server._lock:
                    server._accepted += 1
                    self.number = server._accepted

            def parse_request(self) -> bool:
                parsed = super().parse_request()
                if not parsed and self.requestline:
                    server.unparsed.append(self.requestline[:80])
                return parsed

            def _body(self) -> tuple[str, bytes]:
                if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                    # HTTP/1.1 request bodies may be chunked: read them to the end, or their
                    # bytes would be parsed as the next request on this connection.
                    parts: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return "chunked", b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline(8)
                length = int(self.headers.get("content-length") or 0)
                if "content-length" in self.headers:
                    return "length", self.rfile.read(length) if length else b""
                return "none", b""

            def finish(self) -> None:
                server._sockets.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def _any(self) -> None:
                framing, _ = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer_headers, body = server.handle(self.command, self.path, headers)
                seen = SeenRequest(
                    self.number, self.command, self.path, framing, not isinstance(body, bytes)
                )
                server.requests.append(seen)
                if os.environ.get("MPP_SESSION_SERVER_LOG"):
                    print("server answer:", self.command, self.path, status, file=sys.stderr)
                self.send_response(status)
                for name, value in answer_headers:
                    self.send_header(name, value)
                streaming = not isinstance(body, bytes)
                if streaming:
                    self.send_header("transfer-encoding", "chunked")
                else:
                    self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    if not streaming:
                        self.wfile.write(body)
                        return
                    for chunk in body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:
                if os.environ.get("MPP_SESSION_SERVER_LOG"):
                    import sys

                    sys.stderr.write("server: " + (format % args) + "\n")

        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        httpd.daemon_threads = True
        httpd.allow_reuse_address = True
        self._httpd = httpd
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            self.stop()
            thread.join(timeout=5)

    def stop(self) -> None:
        """Stop serving and drop every open connection (a crash, as a client sees it)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(2)
        with self._lock:
            self._lock.notify_all()


def _open_salt(payload: Any, escrow: str) -> str:
    """The salt of the escrow ``open`` call in an open credential's transaction (for the
    bootstrap snapshot's descriptor; ``""`` when it cannot be read)."""
    from mpp_client.methods.tempo import rlp

    try:
        fields = rlp.decode(bytes.fromhex(str(payload.get("transaction"))[4:]))
        assert isinstance(fields, list) and isinstance(fields[4], list)
        for call in fields[4]:
            assert isinstance(call, list)
            to, data = call[0], call[2]
            assert isinstance(to, bytes) and isinstance(data, bytes)
            if "0x" + to.hex() == escrow and data[:4] == bytes.fromhex("c79ea485"):
                return "0x" + data[100:132].hex()
    except (ValueError, AssertionError, IndexError):
        pass
    return ""


def _b64decode(value: str) -> bytes:
    from mpp_client.protocol.base64url import b64url_decode

    return b64url_decode(value)
