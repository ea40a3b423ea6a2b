"""BOLT11 invoices: decoding and the facts the Lightning charge checks before paying.

Decoding goes through the ``bolt11`` package (checksum and signature; the payee node id is
recovered from the signature when the invoice has no ``n`` field). It is wrapped here so the
rest of the method sees one small frozen value and one error type, and so the decoder can be
swapped for a faster one without touching the checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NoReturn

__all__ = [
    "NETWORKS",
    "NETWORK_BY_PREFIX",
    "Invoice",
    "InvoiceError",
    "LightningNetwork",
    "check_amount",
    "check_network",
    "check_payment_hash",
    "decode_invoice",
]

LightningNetwork = Literal["mainnet", "testnet", "signet", "regtest"]

#: BOLT11 currency prefix (after ``ln``) -> network name as MPP and our configuration spell it.
NETWORK_BY_PREFIX: dict[str, LightningNetwork] = {
    "bc": "mainnet",
    "tb": "testnet",
    "tbs": "signet",
    "bcrt": "regtest",
}

#: The network names a challenge or this client's configuration may use.
NETWORKS: frozenset[str] = frozenset(NETWORK_BY_PREFIX.values())

# The amount part of the human-readable prefix, read exactly (the bolt11 package goes through
# Decimal and int(), which silently drops a sub-millisatoshi remainder such as ``lnbc1p``).
_HRP = re.compile(r"^ln(bcrt|bc|tbs|tb)(?:(\d+)([munp]?))?$")
_PICO_BTC_PER_UNIT = {"": 10**12, "m": 10**9, "u": 10**6, "n": 10**3, "p": 1}
_PICO_BTC_PER_MSAT = 10  # 1 msat = 1e-11 BTC = 10 pico-BTC
_MAX_INVOICE_LENGTH = 7089  # BOLT11 bech32 strings are bounded; refuse absurd input early


class InvoiceError(ValueError):
    """The text is not a valid, signed BOLT11 invoice. The message never contains the invoice."""


@dataclass(frozen=True, slots=True)
class Invoice:
    """A decoded BOLT11 invoice.

    ``amount_msat`` is in millisatoshis (``None`` for an amountless invoice); ``created_at`` and
    ``expires_at`` are aware UTC datetimes; ``payee`` is the 33-byte node id in lower-case hex;
    ``payment_hash`` is 32 bytes in lower-case hex.
    """

    text: str
    network: LightningNetwork
    amount_msat: int | None
    payment_hash: str
    payee: str
    created_at: datetime
    expires_at: datetime
    description: str | None

    @property
    def amount_sat(self) -> int | None:
        """The amount in whole satoshis, or ``None`` if amountless or not a whole number."""
        if self.amount_msat is None or self.amount_msat % 1000:
            return None
        return self.amount_msat // 1000

    def __repr__(self) -> str:
        return (
            f"Invoice(network={self.network!r}, amount_msat={self.amount_msat}, "
            f"payment_hash={self.payment_hash!r}, payee={self.payee!r})"
        )


def decode_invoice(text: str) -> Invoice:
    """Decode and verify a BOLT11 invoice string; raise ``InvoiceError`` when it is not one."""
    import bolt11  # lazy: the `lightning` extra is optional

    if not isinstance(text, str) or not text or len(text) > _MAX_INVOICE_LENGTH:
        raise InvoiceError("the invoice is not a BOLT11 string")
    if text != text.lower() and text != text.upper():
        raise InvoiceError("the invoice mixes upper and lower case (invalid bech32)")
    lowered = text.lower()
    hrp = lowered[: lowered.rfind("1")] if "1" in lowered else ""
    match = _HRP.fullmatch(hrp)
    if match is None:
        raise InvoiceError("the invoice prefix is not a known Lightning network")
    prefix, digits, multiplier = match.groups()
    amount_msat = _exact_amount_msat(digits, multiplier)
    try:
        decoded = bolt11.decode(lowered)
    except Exception as exc:  # bolt11 raises a variety of exception types on malformed input
        raise InvoiceError(f"the invoice does not decode: {type(exc).__name__}") from None
    if decoded.currency != prefix:
        raise InvoiceError("the invoice prefix does not decode consistently")
    if amount_msat is not None and int(decoded.amount_msat or 0) != amount_msat:
        raise InvoiceError("the invoice amount does not decode consistently")
    payee = decoded.payee
    if not isinstance(payee, str) or len(payee) != 66:
        raise InvoiceError("the invoice payee node id cannot be recovered")
    payment_hash = decoded.payment_hash
    if not isinstance(payment_hash, str) or len(payment_hash) != 64:
        raise InvoiceError("the invoice payment hash is not 32 bytes")
    created = int(decoded.date)
    return Invoice(
        text=text,
        network=NETWORK_BY_PREFIX[prefix],
        amount_msat=amount_msat,
        payment_hash=payment_hash.lower(),
        payee=payee.lower(),
        created_at=datetime.fromtimestamp(created, UTC),
        expires_at=datetime.fromtimestamp(created + int(decoded.expiry), UTC),
        description=decoded.description,
    )


def _exact_amount_msat(digits: str | None, multiplier: str) -> int | None:
    if digits is None:
        return None
    if len(digits) > 1 and digits.startswith("0"):
        raise InvoiceError("the invoice amount has leading zeros")
    pico_btc = int(digits) * _PICO_BTC_PER_UNIT[multiplier]
    if pico_btc % _PICO_BTC_PER_MSAT:
        raise InvoiceError("the invoice amount is not a whole number of millisatoshis")
    return pico_btc // _PICO_BTC_PER_MSAT


# --- the checks a challenge's invoice must pass before it is paid (charge and session) ---------

#: Raises the caller's refusal (``PaymentRefused`` with the challenge) with this reason.
Refuse = Callable[[str], BaseException]


def _refuse(refuse: Refuse, reason: str) -> NoReturn:
    raise refuse(reason)


def check_amount(invoice: Invoice, amount_sats: int, refuse: Refuse, *, field: str) -> None:
    """The invoice must ask exactly ``amount_sats`` whole satoshis (``field`` names the
    challenge field it is compared with); amountless invoices are refused."""
    if invoice.amount_msat is None:
        _refuse(refuse, "lightning: the invoice has no amount (amountless invoices are refused)")
    if invoice.amount_sat is None:
        _refuse(
            refuse, f"lightning: the invoice amount {invoice.amount_msat} msat is not whole sats"
        )
    if invoice.amount_sat != amount_sats:
        _refuse(
            refuse,
            f"lightning: the invoice asks {invoice.amount_sat} sat but the challenge "
            f"{field} is {amount_sats} sat",
        )


def check_network(
    invoice: Invoice, declared: object, wallet_network: str, refuse: Refuse, *, field: str
) -> None:
    """The invoice's network must be the one the challenge declares (``field``) and the one
    this wallet pays on."""
    if not isinstance(declared, str) or declared not in NETWORKS:
        _refuse(refuse, f"lightning: unknown {field} {short_value(declared)}")
    if invoice.network != declared:
        _refuse(
            refuse,
            f"lightning: the invoice is for {invoice.network} but the challenge says {declared}",
        )
    if invoice.network != wallet_network:
        _refuse(
            refuse,
            f"lightning: the invoice is for {invoice.network} but this wallet pays on "
            f"{wallet_network}",
        )


def check_payment_hash(
    invoice: Invoice, declared: object, refuse: Refuse, *, field: str, required: bool = False
) -> None:
    """The challenge's payment hash (``field``; optional unless ``required``) must be the
    invoice's."""
    if declared is None and not required:
        return
    if not isinstance(declared, str) or len(declared) != 64 or not _is_hex(declared):
        _refuse(refuse, f"lightning: {field} is not 64 hex characters")
    if declared.lower() != invoice.payment_hash:
        _refuse(refuse, f"lightning: {field} differs from the invoice's")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def short_value(value: object) -> str:
    """``repr(value)`` cut to 40 characters, for a refusal message about a server's field."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
