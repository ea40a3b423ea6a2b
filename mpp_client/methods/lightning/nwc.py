"""Nostr Wallet Connect (NIP-47): pay through any wallet that hands out a
``nostr+walletconnect://`` connection (Alby Hub, LNbits, Coinos, Primal, Zeus, ...).

A request is a kind-23194 event to the wallet's key, its content encrypted to the wallet
(NIP-44 v2 when the wallet's kind-13194 info event lists ``nip44_v2``, else NIP-04); the answer
is a kind-23195 event from the wallet that references the request. Every request carries an
``expiration`` tag so a wallet that receives it late (after we stopped waiting and reported the
outcome as unknown) does not execute it.

Needs the ``nwc`` extra (``websockets``, ``coincurve``, ``cryptography``). One websocket
connection per call, to the first relay of the connection URI. NIP-47 has no fee cap in
``pay_invoice``: the wallet's own budget for this connection is the limit.

Nothing is proven sent-or-not by the relay alone: a request that never left (no relay, the
relay refused the event) and the wallet's refusals before paying (balance, budget, rights)
prove nothing moved; ``PAYMENT_FAILED`` (which NIP-47 also uses for timeouts) is confirmed with
``lookup_invoice``; a missing or late answer leaves the outcome unknown.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from mpp_client.effects import Await, Effect
from mpp_client.errors import NothingSent
from mpp_client.extras import require_extra
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning import nostr
from mpp_client.methods.lightning.payer import (
    CreatedInvoice,
    LightningPayer,
    PaymentPending,
    PaymentReportedFailed,
    PayResult,
    Received,
    preimage_matches,
)
from mpp_client.methods.lightning.rest import error_text
from mpp_client.secret import Secret, Secrets, reveal

__all__ = ["NwcConnection", "NwcError", "NwcPayer"]

REQUEST_KIND = 23194
RESPONSE_KIND = 23195
INFO_KIND = 13194

# NIP-47 error codes of a refusal before the wallet starts paying: it has not paid (and will
# not pay this request).
_REFUSED_CODES = frozenset(
    {
        "RATE_LIMITED",
        "NOT_IMPLEMENTED",
        "INSUFFICIENT_BALANCE",
        "QUOTA_EXCEEDED",
        "RESTRICTED",
        "UNAUTHORIZED",
        "UNSUPPORTED_ENCRYPTION",
        "BAD_REQUEST",
    }
)
# "The payment failed. This may be due to a timeout, exhausting all routes, ...": after an
# attempt, and possibly while its HTLCs are still in flight. Confirmed with a lookup.
_FAILED_CODES = frozenset({"PAYMENT_FAILED"})

Encryption = Literal["nip44", "nip04"]


class NwcError(Exception):
    """The wallet or relay answered in a way this client cannot use (no secrets in it)."""


@dataclass(frozen=True, slots=True)
class NwcConnection:
    """A parsed ``nostr+walletconnect://<wallet pubkey>?relay=...&secret=...`` URI.

    ``secret`` (a ``Secret`` of 32 bytes; ``secret.reveal()``) is the client key the wallet
    authorised: a spending credential, so it never shows in a repr, ``asdict`` or ``vars``.
    """

    wallet_pubkey: str
    relays: tuple[str, ...]
    secret: Secret[bytes] = field(repr=False)
    lud16: str | None = None

    @classmethod
    def parse(cls, uri: str | Secret[str]) -> NwcConnection:
        """Parse and validate a connection URI; the error never repeats the URI."""
        parts = urlsplit(reveal(uri).strip())
        if parts.scheme not in ("nostr+walletconnect", "nostrwalletconnect"):
            raise ValueError("not a nostr+walletconnect:// URI")
        wallet = (parts.netloc or parts.path.lstrip("/")).lower()
        if len(wallet) != 64 or any(c not in "0123456789abcdef" for c in wallet):
            raise ValueError("the NWC URI's wallet public key is not 64 hex characters")
        query = parse_qs(parts.query)
        relays = tuple(query.get("relay", []))
        if not relays or not all(r.startswith(("wss://", "ws://")) for r in relays):
            raise ValueError("the NWC URI needs at least one ws:// or wss:// relay")
        secret_hex = (query.get("secret") or [""])[0]
        try:
            secret = bytes.fromhex(secret_hex)
        except ValueError:
            secret = b""
        if len(secret) != 32:
            raise ValueError("the NWC URI's secret is not 32 bytes of hex")
        lud16_values = query.get("lud16")
        lud16 = lud16_values[0] if lud16_values else None
        return cls(wallet, relays, Secret(secret), lud16)

    def __repr__(self) -> str:
        return (
            f"NwcConnection(wallet={self.wallet_pubkey[:12]}..., relays={list(self.relays)!r}, "
            "secret=<redacted>)"
        )


class NwcPayer(LightningPayer):
    """Pays with NIP-47 ``pay_invoice`` and looks up with ``lookup_invoice``.

    ``uri`` is the connection string (secret). ``timeout`` is how many seconds to wait for the
    wallet's answer (the request expires then). ``encryption``: ``"auto"`` reads the wallet's
    info event; ``"nip44"`` or ``"nip04"`` force one.
    """

    name = "nwc"

    def __init__(
        self,
        uri: str | Secret[str],
        *,
        timeout: float = 60.0,
        encryption: Literal["auto", "nip44", "nip04"] = "auto",
    ) -> None:
        require_extra("nwc", "NwcPayer")
        self._connection = NwcConnection.parse(uri)
        # A wallet or relay that echoes what it got is scrubbed of the key in any form.
        self._secrets = Secrets(self._connection.secret)
        self._timeout = timeout
        self._encryption_choice = encryption
        self._encryption: Encryption | None = None if encryption == "auto" else encryption

    def __repr__(self) -> str:
        return f"NwcPayer({self._connection!r})"

    @property
    def identity(self) -> str:
        """``"nwc:<wallet pubkey>/<client pubkey>"``: the wallet service and this connection
        (both public keys; a new connection to the same wallet is a different identity)."""
        return f"nwc:{self._connection.wallet_pubkey}/{self.client_pubkey}"

    @property
    def client_pubkey(self) -> str:
        """This connection's public key (the wallet's view of us), 64 hex."""
        return nostr.public_key_of(self._connection.secret.reveal())

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """``pay_invoice``; ``max_fee_sats`` cannot be sent (see module doc)."""
        answer: _Answer = yield Await(lambda: self._exchange("pay_invoice", {"invoice": invoice}))
        response = answer.data
        error = response.get("error")
        if isinstance(error, dict):
            code = str(error.get("code", "OTHER"))
            message = error_text(error.get("message", ""), secrets=self._secrets)
            if code not in _REFUSED_CODES | _FAILED_CODES:
                code = error_text(code, 40, secrets=self._secrets)
            if code in _REFUSED_CODES:
                raise NothingSent(f"the NWC wallet did not pay ({code}): {message}")
            if code in _FAILED_CODES:
                raise PaymentReportedFailed(f"the NWC wallet could not pay ({code}): {message}")
            raise PaymentPending(f"the NWC wallet answered {code}: {message}")
        result = response.get("result")
        preimage = result.get("preimage") if isinstance(result, dict) else None
        if not isinstance(preimage, str):
            raise PaymentPending("the NWC wallet answered without a preimage")
        fees = result.get("fees_paid") if isinstance(result, dict) else None
        return PayResult(preimage.lower(), "", fees if isinstance(fees, int) else None)

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """``lookup_invoice`` by payment hash (the wallet's record of our outgoing payment).

        ``failed`` only when the wallet shows an outgoing payment in state ``failed``.
        ``NOT_FOUND`` is ``pending``: many wallets look up only the invoices they issued, and
        a request still on a relay may arrive later, so it does not prove we never paid.
        """
        params = {"payment_hash": payment_hash}
        answer: _Answer = yield Await(lambda: self._exchange("lookup_invoice", params))
        response = answer.data
        error = response.get("error")
        if isinstance(error, dict):
            detail = error_text(str(error.get("code")), 40, secrets=self._secrets)
            return LookupResult("pending", payment_hash, detail=detail)
        result = response.get("result")
        if not isinstance(result, dict):
            return LookupResult("pending", payment_hash)
        if result.get("type") == "incoming":
            # The wallet's own invoice with this hash, not a payment it made.
            return LookupResult("pending", payment_hash, detail="only an incoming invoice")
        amount_msat = result.get("amount")
        amount = amount_msat // 1000 if isinstance(amount_msat, int) else None
        state = result.get("state")
        preimage = result.get("preimage")
        if (
            result.get("settled_at")
            or state == "settled"
            or (isinstance(preimage, str) and preimage_matches(preimage, payment_hash))
        ):
            return LookupResult("settled", payment_hash, amount=amount)
        if state == "failed":
            return LookupResult("failed", payment_hash, amount=amount, detail="failed")
        shown = None if state is None else error_text(state, 40, secrets=self._secrets)
        return LookupResult("pending", payment_hash, amount=amount, detail=shown)

    # --- receiving (Lightning sessions) ---------------------------------------------------------

    #: NIP-47 ``make_invoice`` takes an ``amount``; this client asks for 0 (any amount), and a
    #: session checks that the invoice it got back really has no amount before it pays.
    receives_amountless = True

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        """``make_invoice`` with ``amount`` 0; a wallet that refuses raises ``NothingSent``."""
        params = {"amount": 0, "description": memo, "expiry": expiry_seconds}
        answer: _Answer = yield Await(lambda: self._exchange("make_invoice", params))
        response = answer.data
        error = response.get("error")
        result = response.get("result")
        invoice = result.get("invoice") if isinstance(result, dict) else None
        if isinstance(error, dict) or not isinstance(invoice, str):
            code = error.get("code", "") if isinstance(error, dict) else "no invoice"
            shown = error_text(code, 40, secrets=self._secrets)
            raise NothingSent(f"the NWC wallet did not create an invoice ({shown})")
        payment_hash = result.get("payment_hash") if isinstance(result, dict) else None
        return CreatedInvoice(invoice, str(payment_hash or "").lower())

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """``lookup_invoice`` of our incoming invoice: settled -> received (``amount`` msat);
        ``pending``/``expired`` -> unpaid; anything else -> unknown."""
        params = {"payment_hash": payment_hash}
        answer: _Answer = yield Await(lambda: self._exchange("lookup_invoice", params))
        result = answer.data.get("result")
        if not isinstance(result, dict) or result.get("type") not in (None, "incoming"):
            return Received("unknown", payment_hash, detail="no incoming invoice in the answer")
        amount = result.get("amount")
        amount_msat = amount if isinstance(amount, int) and not isinstance(amount, bool) else None
        if result.get("settled_at") or result.get("state") == "settled":
            return Received("received", payment_hash, amount_msat)
        if result.get("state") in ("pending", "expired"):
            return Received("unpaid", payment_hash, detail=str(result.get("state")))
        return Received("unknown", payment_hash)

    # --- one request/response exchange over a relay --------------------------------------------

    async def _exchange(self, method: str, params: dict[str, Any]) -> _Answer:
        # Wrapped: the answer travels through the drivers' frames (their ``reply`` locals),
        # and a wallet's error text may echo the connection secret.
        return _Answer(await self._call(method, params))

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        import websockets

        relay = self._connection.relays[0]
        try:
            socket = await websockets.connect(relay, open_timeout=10, max_size=2**20)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise NothingSent(
                f"the NWC relay could not be reached ({type(exc).__name__})"
            ) from None
        async with socket:
            try:
                encryption = await self._negotiate(socket)
                request = self._request_event(method, params, encryption)
                subscription = secrets.token_hex(8)
                await socket.send(
                    json.dumps(
                        [
                            "REQ",
                            subscription,
                            {
                                "kinds": [RESPONSE_KIND],
                                "authors": [self._connection.wallet_pubkey],
                                "#e": [request["id"]],
                            },
                        ]
                    )
                )
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                raise NothingSent(
                    f"the NWC relay connection failed before the request ({type(exc).__name__})"
                ) from None
            # From here on the wallet may receive the request: failures are not proof of
            # anything, so they propagate as they are (the charge reports an unknown outcome).
            await socket.send(json.dumps(["EVENT", request]))
            return await asyncio.wait_for(
                self._answer(socket, subscription, request["id"], encryption), self._timeout
            )

    def _request_event(
        self, method: str, params: dict[str, Any], encryption: Encryption
    ) -> dict[str, Any]:
        plaintext = json.dumps({"method": method, "params": params}, separators=(",", ":"))
        # The key is revealed only into the calls that need it, never into a local of a frame
        # a traceback with captured locals could show.
        key, wallet = self._connection.secret, self._connection.wallet_pubkey
        tags = [["p", wallet], ["expiration", str(int(time.time() + self._timeout))]]
        if encryption == "nip44":
            content = nostr.nip44_encrypt(key.reveal(), wallet, plaintext)
            tags.append(["encryption", "nip44_v2"])
        else:
            content = nostr.nip04_encrypt(key.reveal(), wallet, plaintext)
        return nostr.sign_event(key.reveal(), REQUEST_KIND, content, tags)

    async def _negotiate(self, socket: Any) -> Encryption:
        if self._encryption is not None:
            return self._encryption
        subscription = secrets.token_hex(8)
        await socket.send(
            json.dumps(
                [
                    "REQ",
                    subscription,
                    {"kinds": [INFO_KIND], "authors": [self._connection.wallet_pubkey], "limit": 1},
                ]
            )
        )
        chosen: Encryption = "nip04"  # NIP-47: no encryption tag means NIP-04 only
        while True:
            message = await asyncio.wait_for(socket.recv(), self._timeout)
            frame = _frame(message)
            if frame[:2] == ["EOSE", subscription]:
                break
            if len(frame) == 3 and frame[:2] == ["EVENT", subscription]:
                event = frame[2]
                if nostr.verify_event(event) and event.get("pubkey") == (
                    self._connection.wallet_pubkey
                ):
                    schemes = " ".join(
                        t[1]
                        for t in event.get("tags", [])
                        if t[:1] == ["encryption"] and len(t) > 1
                    ).split()
                    if "nip44_v2" in schemes:
                        chosen = "nip44"
        await socket.send(json.dumps(["CLOSE", subscription]))
        self._encryption = chosen
        return chosen

    async def _answer(
        self, socket: Any, subscription: str, request_id: str, encryption: Encryption
    ) -> dict[str, Any]:
        key, wallet = self._connection.secret, self._connection.wallet_pubkey
        while True:
            frame = _frame(await socket.recv())
            if frame[:2] == ["OK", request_id] and len(frame) >= 3 and frame[2] is False:
                # The relay refused to store or forward the request: the wallet never saw it.
                reason = frame[3] if len(frame) > 3 else ""
                reason = error_text(reason, secrets=self._secrets)
                raise NothingSent(f"the NWC relay rejected the request: {reason}")
            if frame[:2] == ["CLOSED", subscription]:
                raise NwcError("the NWC relay closed the reply subscription")
            if len(frame) != 3 or frame[:2] != ["EVENT", subscription]:
                continue
            event = frame[2]
            if (
                not isinstance(event, dict)
                or event.get("kind") != RESPONSE_KIND
                or event.get("pubkey") != wallet
                or ["e", request_id] not in [t[:2] for t in event.get("tags", [])]
                or not nostr.verify_event(event)
            ):
                continue  # not our wallet's signed answer to this request: ignore it
            content = str(event.get("content", ""))
            try:
                plaintext = (
                    nostr.nip04_decrypt(key.reveal(), wallet, content)
                    if "?iv=" in content
                    else nostr.nip44_decrypt(key.reveal(), wallet, content)
                )
                answer = json.loads(plaintext)
            except ValueError:
                raise NwcError("the NWC wallet's answer does not decrypt") from None
            if not isinstance(answer, dict):
                raise NwcError("the NWC wallet's answer is not a JSON object")
            return answer


class _Answer:
    """A wallet's decrypted answer; its repr hides the content (it may echo secrets)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __repr__(self) -> str:
        return "NwcAnswer(<content hidden>)"


def _frame(message: str | bytes) -> list[Any]:
    try:
        value = json.loads(message)
    except ValueError:
        return []
    return value if isinstance(value, list) else []
