"""``TempoSession``: pay ``tempo``/``session`` challenges through a payment channel (README §14).

The first request to a session endpoint opens a channel: ONE ``0x76`` transaction batching a
TIP-20 ``approve`` of the escrow and the escrow's ``open`` (gas limit set explicitly: anvil's
estimate ignores the calls), plus a first voucher prepaying one unit. The deposit is what can
be lost, so it is what the wallet reserves: the open is an ordinary journal entry for the
deposit (plus the network fee). Every later request, and every ``payment-need-voucher`` event
of a metered event stream, is paid with a cumulative EIP-712 voucher, recorded durably in the
journal's channel record (``mpp_client.wallet.channels``) BEFORE it is sent; a restart resumes
from the highest. A stream that needs more than the deposit is topped up (an ``approve`` +
``topUp`` transaction, reserved against the budgets like the open). ``close`` sends the final
voucher, checks on chain that the channel is finalized, and only then returns the unspent
deposit to the budgets.

Refused before anything is signed: a chain or token not allowed (the checks of
``TempoCharge``), an escrow not canonical for the chain (others only by ``escrows=``), a v2
session (the channel reserve precompile, which no local chain has: its encodings are here,
``build_v2_open``/``v2_voucher_payload``/``build_v2_top_up``, checked against mppx 0.11's own
server-side verification, but nothing is paid with them until they can be tried on a chain that
has the precompile), a deposit above ``max_deposit``, and on a stream a ``requiredCumulative``
above what the units received at the agreed price allow.

Units on a stream: every event that reaches the reader (not a control event) is one unit.
A server may ask for the next ``max_prepaid_units`` units in advance; asking for more than
``base + price * (units received + max_prepaid_units)`` is refused (``SessionStreamError``)
and the stream is closed. With ``max_prepaid_units`` above 1 the client also prepays on its
own: the paid request's voucher (on a channel that streamed before in this process) or one
posted before the first chunk pays the server's balance (what it accepted less what it spent)
up to ``max_prepaid_units`` units, and each ``payment-need-voucher`` is answered with the
voucher for ``max_prepaid_units`` units beyond those received (never above the deposit nor
the wallet's per-payment/per-call caps): a stream of up to ``max_prepaid_units`` units needs
no voucher of its own, and a long one a voucher per ``max_prepaid_units`` units.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import secrets
import threading
import uuid
from collections.abc import Callable, Collection, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mpp_client.clock import SYSTEM_CLOCK, Clock, utcnow
from mpp_client.effects import Checkpoint, Effect, HttpCall, HttpReply, JournalWrite
from mpp_client.errors import (
    BudgetExceeded,
    ChallengeExpired,
    EffectFailed,
    JournalError,
    MethodError,
    NotAllowed,
)
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import (
    LookupResult,
    Payee,
    PaymentContext,
    PaymentMethod,
    PaymentProof,
    Quote,
)
from mpp_client.methods.tempo.charge import (
    DEFAULT_MAX_FEE_PER_GAS,
    SIGNING_HASH_PREFIX,
    InvalidChargeRequest,
    NothingSigned,
    TempoCharge,
)
from mpp_client.methods.tempo.escrow import (
    CANONICAL_ESCROWS,
    CLOSE_GRACE_SECONDS,
    V2_PRECOMPILE,
    OnChainChannel,
    approve_data,
    decode_channel,
    get_channel_data,
    open_data,
    open_v2_data,
    request_close_data,
    top_up_data,
    top_up_v2_data,
    withdraw_data,
)
from mpp_client.methods.tempo.keccak import is_address
from mpp_client.methods.tempo.proof import proof_digest
from mpp_client.methods.tempo.rpc import RpcError, rpc_call
from mpp_client.methods.tempo.signer import Signer, recover_address
from mpp_client.methods.tempo.tip20 import TIP20_DECIMALS
from mpp_client.methods.tempo.transaction import (
    EXPIRING_NONCE_KEY,
    Call,
    TempoTransaction,
    address_bytes,
    tx_hash,
)
from mpp_client.methods.tempo.voucher import (
    MAX_UINT96,
    MAX_UINT128,
    ChannelDescriptor,
    SessionSnapshot,
    channel_id_v1,
    channel_id_v2,
    check_low_s,
    expiring_nonce_hash,
    voucher_digest,
)
from mpp_client.money import Money
from mpp_client.protocol import Challenge, Credential, Receipt, parse_challenges, parse_receipt
from mpp_client.session.base import (
    SessionStreamError,
    SideRequest,
    StreamContext,
    receipt_from_event,
)
from mpp_client.wallet.channels import ChannelRecord, ChannelStore, NewChannel

if TYPE_CHECKING:
    from mpp_client.session.sse import SseEvent

__all__ = [
    "SessionPlan",
    "TempoSession",
    "V2Transaction",
    "build_v2_open",
    "build_v2_top_up",
    "v2_voucher_payload",
]

log = logging.getLogger("mpp_client")

_ZERO = "0x" + "0" * 40
_ATTO_PER_BASE_UNIT = 10 ** (18 - TIP20_DECIMALS)
#: Measured on anvil (Tempo T4): open 1,573,341 gas, topUp 258,196.
DEFAULT_OPEN_GAS = 2_000_000
DEFAULT_TOP_UP_GAS = 600_000
#: v2 (the precompile) has no measured figure: no local chain has it. One call, no approve.
DEFAULT_V2_GAS = 1_000_000


@dataclass(frozen=True, slots=True)
class V2Transaction:
    """A signed v2 management transaction and the credential payload that carries it.

    ``transaction``: the broadcastable ``0x76`` bytes, or, sponsored, the ``0x78`` hand-off the
    server co-signs. ``reference``: the transaction hash (self-paid) or ``signing-hash:0x...``
    (sponsored: the hash is only known once the fee payer signs)."""

    channel_id: str
    descriptor: ChannelDescriptor
    transaction: bytes
    reference: str
    payload: dict[str, Any]


def _v2_transaction(
    signer: Signer,
    *,
    chain_id: int,
    data: bytes,
    token: str,
    valid_before: int,
    max_fee_per_gas: int,
    gas_limit: int,
    sponsored: bool,
    escrow: str,
) -> tuple[TempoTransaction, bytes, str]:
    tx = TempoTransaction(
        chain_id=chain_id,
        calls=(Call(address_bytes(escrow), 0, data),),
        gas_limit=gas_limit,
        max_fee_per_gas=max_fee_per_gas,
        nonce_key=EXPIRING_NONCE_KEY,
        valid_before=valid_before,
        fee_token=None if sponsored else address_bytes(token),
        sponsored=sponsored,
    )
    digest = tx.signing_hash()
    signature = signer.sign_hash(digest)
    if sponsored:
        raw = tx.fee_payer_envelope(address_bytes(signer.address), signature)
        return tx, raw, SIGNING_HASH_PREFIX + "0x" + digest.hex()
    raw = tx.encode(signature)
    return tx, raw, tx_hash(raw)


def build_v2_open(
    signer: Signer,
    *,
    chain_id: int,
    payee: str,
    token: str,
    deposit: int,
    valid_before: int,
    max_fee_per_gas: int,
    cumulative: int = 0,
    operator: str = _ZERO,
    authorized_signer: str = _ZERO,
    salt: str | None = None,
    sponsored: bool = False,
    gas_limit: int = DEFAULT_V2_GAS,
    escrow: str = V2_PRECOMPILE,
) -> V2Transaction:
    """Sign a v2 ``open`` (ONE call to the precompile, which pulls ``deposit`` base units of
    ``token`` itself: no approve) on the expiring-nonce lane, derive its descriptor and channel
    id (``expiringNonceHash`` = keccak256 of the sender's signing payload and address, so it
    depends on every field of this transaction), and sign the first voucher for ``cumulative``.
    ``valid_before``: Unix seconds on the chain's clock. No I/O; the caller journals the
    result before it is sent."""
    if not 0 < deposit <= MAX_UINT96 or not 0 <= cumulative <= deposit:
        raise ValueError("v2: 0 < deposit <= 2**96-1 and 0 <= cumulative <= deposit")
    salt = salt if salt is not None else "0x" + secrets.token_bytes(32).hex()
    data = open_v2_data(payee, operator, token, deposit, salt, authorized_signer)
    tx, raw, reference = _v2_transaction(
        signer, chain_id=chain_id, data=data, token=token, valid_before=valid_before,
        max_fee_per_gas=max_fee_per_gas, gas_limit=gas_limit, sponsored=sponsored,
        escrow=escrow,
    )  # fmt: skip
    descriptor = ChannelDescriptor(
        payer=signer.address.lower(), payee=payee.lower(), operator=operator.lower(),
        token=token.lower(), salt=salt.lower(), authorized_signer=authorized_signer.lower(),
        expiring_nonce_hash=expiring_nonce_hash(tx.signing_payload(), signer.address),
    )  # fmt: skip
    channel_id = channel_id_v2(descriptor, escrow=escrow, chain_id=chain_id)
    voucher = v2_voucher_payload(
        signer, descriptor, chain_id=chain_id, cumulative=cumulative, escrow=escrow
    )
    payload: dict[str, Any] = {
        "action": "open",
        "type": "transaction",
        "channelId": channel_id,
        "transaction": "0x" + raw.hex(),
        "descriptor": descriptor.to_json(),
        "cumulativeAmount": str(cumulative),
        "signature": voucher["signature"],
    }
    if authorized_signer.lower() != _ZERO:
        payload["authorizedSigner"] = authorized_signer.lower()
    return V2Transaction(channel_id, descriptor, raw, reference, payload)


def v2_voucher_payload(
    signer: Signer,
    descriptor: ChannelDescriptor,
    *,
    chain_id: int,
    cumulative: int,
    escrow: str = V2_PRECOMPILE,
    action: str = "voucher",
) -> dict[str, Any]:
    """The v2 ``voucher`` (or ``close``) payload for the cumulative ``cumulative`` (base
    units, uint96): EIP-712 ``Voucher(bytes32 channelId,uint96 cumulativeAmount)`` in the
    ``TIP20 Channel Reserve`` domain, 65 bytes low-s, signed by the payer's plain key."""
    if action not in ("voucher", "close"):
        raise ValueError("action: voucher or close")
    channel_id = channel_id_v2(descriptor, escrow=escrow, chain_id=chain_id)
    digest = voucher_digest("v2", chain_id, escrow, channel_id, cumulative)
    return {
        "action": action,
        "channelId": channel_id,
        "descriptor": descriptor.to_json(),
        "cumulativeAmount": str(cumulative),
        "signature": "0x" + signer.sign_raw_hash(digest).hex(),
    }


def build_v2_top_up(
    signer: Signer,
    descriptor: ChannelDescriptor,
    *,
    chain_id: int,
    amount: int,
    valid_before: int,
    max_fee_per_gas: int,
    sponsored: bool = False,
    gas_limit: int = DEFAULT_V2_GAS,
    escrow: str = V2_PRECOMPILE,
) -> V2Transaction:
    """Sign a v2 ``topUp(descriptor, amount)`` (one call, no approve) and its payload."""
    _, raw, reference = _v2_transaction(
        signer, chain_id=chain_id, data=top_up_v2_data(descriptor, amount),
        token=descriptor.token, valid_before=valid_before, max_fee_per_gas=max_fee_per_gas,
        gas_limit=gas_limit, sponsored=sponsored, escrow=escrow,
    )  # fmt: skip
    channel_id = channel_id_v2(descriptor, escrow=escrow, chain_id=chain_id)
    payload = {
        "action": "topUp",
        "type": "transaction",
        "channelId": channel_id,
        "transaction": "0x" + raw.hex(),
        "descriptor": descriptor.to_json(),
        "additionalDeposit": str(amount),
    }
    return V2Transaction(channel_id, descriptor, raw, reference, payload)


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What ``quote`` decided (kept in ``Quote.details["session"]``; never secrets).

    ``action``: ``open`` or ``voucher``. Amounts in base units: ``price`` per unit,
    ``increment`` what one paid request adds to the cumulative (``max(price,
    minVoucherDelta)``), ``deposit`` of the channel (to open, or open), ``base`` the cumulative
    signed before this request."""

    action: str
    chain_id: int
    rpc_url: str
    escrow: str
    token: str
    payee: str
    price: int
    increment: int
    deposit: int
    sponsored: bool
    lookup_key: str
    origin: str
    unit_type: str | None
    expires_at: int | None
    channel_id: str | None = None
    base: int = 0


class TempoSession(PaymentMethod):
    """Pays ``tempo``/``session`` (v1, escrow contract) challenges from one ``Signer``.

    ``max_deposit`` (base units, required): the most one channel may hold, top-ups included.
    ``deposit``: what to deposit when the server suggests nothing (default ``max_deposit``; a
    ``suggestedDeposit`` is taken when it is lower than ``max_deposit``). ``top_up``: how much a
    top-up adds at least (default: the current deposit, so it doubles; never past
    ``max_deposit``). ``escrows``: escrow contracts allowed besides the canonical ones, per
    chain id (an opt-in: a server's own escrow could be anything). ``max_prepaid_units``:
    units a stream may be paid ahead (default 1): the most the server may ask ahead of what
    was received, and, above 1, what the client prepays on its own (see the module docstring;
    it is money the server holds before it streamed for it: 200-1,000 units suit a fast
    stream).
    ``chain_id``, ``rpc_url``, ``tokens``, ``expiry_window``, ``max_fee_per_gas``,
    ``expiry_margin``, ``timeout``, ``clock``: as ``TempoCharge`` (the same checks).
    ``open_gas_limit``/``top_up_gas_limit``: fixed gas limits (set explicitly: node estimates
    of batched Tempo calls are unreliable). ``channels``: where channel records live (default:
    the journal of the ``Wallet`` this method is given to). ``proof_realms``: realms besides the
    server's own host for which ``bootstrap`` may sign a zero-amount identity proof.

    The signer must make plain secp256k1 signatures (``sign_raw_hash``): vouchers are
    EIP-712 messages checked by the escrow against the payer (an access key cannot sign them).
    """

    name = "tempo"
    intents = frozenset({"session"})

    def __init__(
        self,
        signer: Signer,
        *,
        max_deposit: int,
        deposit: int | None = None,
        top_up: int | None = None,
        escrows: Mapping[int, Iterable[str]] | None = None,
        max_prepaid_units: int = 1,
        chain_id: int | Collection[int] = 4217,
        rpc_url: str | Mapping[int, str] | None = None,
        tokens: Iterable[str] | None = None,
        expiry_window: float = 25.0,
        expiry_margin: float = 3.0,
        max_fee_per_gas: int = DEFAULT_MAX_FEE_PER_GAS,
        open_gas_limit: int = DEFAULT_OPEN_GAS,
        top_up_gas_limit: int = DEFAULT_TOP_UP_GAS,
        timeout: float = 10.0,
        channels: ChannelStore | str | None = None,
        proof_realms: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        if max_deposit <= 0 or max_deposit > MAX_UINT128:
            raise ValueError("max_deposit: a positive amount in base units (uint128)")
        if deposit is not None and not 0 < deposit <= max_deposit:
            raise ValueError("deposit: positive and at most max_deposit")
        if max_prepaid_units < 1:
            raise ValueError("max_prepaid_units: at least 1")
        self.signer = signer
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        # The charge method holds the chain, token and RPC rules and caches: one set of checks.
        self._charge = TempoCharge(
            signer,
            chain_id=chain_id,
            rpc_url=rpc_url,
            tokens=tokens,
            expiry_window=expiry_window,
            expiry_margin=expiry_margin,
            max_fee_per_gas=max_fee_per_gas,
            timeout=timeout,
            proof_realms=proof_realms,
            clock=self.clock,
        )
        self.max_deposit = max_deposit
        self.deposit = deposit
        self.top_up = top_up
        self.max_prepaid_units = max_prepaid_units
        self.expiry_window = expiry_window
        self.expiry_margin = expiry_margin
        self.max_fee_per_gas = max_fee_per_gas
        self.open_gas_limit = open_gas_limit
        self.top_up_gas_limit = top_up_gas_limit
        self.timeout = timeout
        allowed: dict[int, set[str]] = {c: set(CANONICAL_ESCROWS.get(c, ())) for c in self.chains}
        for chain, addresses in (escrows or {}).items():
            for address in addresses:
                if not is_address(address):
                    raise ValueError(f"escrows: not an address: {address!r}")
                allowed.setdefault(chain, set()).add(address.lower())
        self.escrows: dict[int, frozenset[str]] = {c: frozenset(a) for c, a in allowed.items()}
        self._store: ChannelStore | None = (
            ChannelStore(channels, clock=self.clock) if isinstance(channels, str) else channels
        )
        # One voucher at a time per channel in this process (the store's compare-and-set
        # serializes processes).
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Per channel that streamed in this process: the server's last reported ``spent`` and
        # the guard (wallet) that metered it (``_paid_prepay``).
        self._streamed: dict[str, tuple[int, Any]] = {}
        # Per channel: the last paid request's voucher (its challenge id, the cumulative it
        # signed, the deposit then), for the stream handler of that request.
        self._paid_signed: dict[str, tuple[str, int, int]] = {}

    @property
    def chains(self) -> frozenset[int]:
        """The chain ids this method pays on."""
        return self._charge.chain_ids

    @property
    def channels(self) -> ChannelStore:
        """The channel records (``ValueError`` until a wallet or ``channels=`` provides them)."""
        if self._store is None:
            raise ValueError(
                "TempoSession has no channel records: give it to a Wallet (its journal keeps "
                "them) or pass channels=ChannelStore(path)"
            )
        return self._store

    def use_journal(self, journal: Any, clock: Clock | None = None) -> None:
        """Called by ``Wallet``: keep channel records in its journal's database (unless
        ``channels=`` was given)."""
        if self._store is None:
            # SessionRecordsUnavailable (naming the fix) now, not a failure mid-payment.
            self._store = ChannelStore.for_journal(journal, clock=clock or self.clock)

    def payer(self, network: str | None) -> str | None:
        return self._charge.payer(network)

    def __repr__(self) -> str:
        return (
            f"TempoSession(address={self.signer.address}, chains={sorted(self.chains)}, "
            f"max_deposit={self.max_deposit})"
        )

    # --- quote -------------------------------------------------------------------------------

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check a session challenge and price it without I/O: a voucher on an open channel
        costs nothing more (its deposit is held already); an open costs the deposit."""
        request: Any = challenge.request_data

        def refuse(reason: str) -> InvalidChargeRequest:
            return InvalidChargeRequest(f"tempo session: {reason}", challenge=challenge)

        if not isinstance(request, Mapping):
            raise refuse("the request is not a JSON object")
        details = request.get("methodDetails") or {}
        if not isinstance(details, Mapping):
            raise refuse("methodDetails is not an object")
        protocol = details.get("sessionProtocol", "v1")
        if protocol != "v1":
            raise NotAllowed(
                f"tempo session: protocol {str(protocol)[:8]!r} is not paid by this client "
                "(v1 escrow sessions only; v2 needs the channel reserve precompile)",
                rule="tempo.session_protocol",
                challenge=challenge,
            )
        chain_id = self._charge._chain_for(details.get("chainId"), challenge)
        token = self._charge._token_for(chain_id, request.get("currency"), challenge)
        price = _amount(request.get("amount"), "amount", refuse)
        if price <= 0:
            raise refuse("the unit price (amount) must be positive")
        payee = request.get("recipient")
        if not is_address(payee) or str(payee).lower() == _ZERO:
            raise refuse("recipient is not a valid address")
        escrow = details.get("escrowContract")
        if not is_address(escrow):
            raise refuse("methodDetails.escrowContract is not an address")
        escrow = str(escrow).lower()
        if escrow not in self.escrows.get(chain_id, frozenset()):
            raise NotAllowed(
                f"tempo session: escrow {escrow} is not a canonical escrow of chain {chain_id} "
                "(allow it with TempoSession(escrows={chain: [address]}))",
                rule="tempo.escrow",
                challenge=challenge,
            )
        min_delta = 0
        if details.get("minVoucherDelta") is not None:
            min_delta = _amount(details.get("minVoucherDelta"), "minVoucherDelta", refuse)
        sponsored = details.get("feePayer", False)
        if not isinstance(sponsored, bool):
            raise refuse("methodDetails.feePayer is not a boolean")
        expires = challenge.expires_at
        if expires is not None and expires.timestamp() - context.now.timestamp() < (
            self.expiry_margin
        ):
            raise ChallengeExpired(
                "tempo session: the challenge expires too soon to pay", challenge=challenge
            )
        unit_type = request.get("unitType")
        increment = max(price, min_delta)
        origin = context.origin.rstrip("/").lower()
        key = "|".join(
            [origin, str(payee).lower(), token.address, escrow, str(chain_id),
             self.signer.address.lower()]
        )  # fmt: skip
        currency = self._charge._currency(chain_id, token.address)
        rpc_url = self._charge.rpc_urls[chain_id]
        common = SessionPlan(
            action="open", chain_id=chain_id, rpc_url=rpc_url, escrow=escrow,
            token=token.address, payee=str(payee).lower(), price=price, increment=increment,
            deposit=0, sponsored=sponsored, lookup_key=key, origin=origin,
            unit_type=unit_type if isinstance(unit_type, str) else None,
            expires_at=math.floor(expires.timestamp()) if expires is not None else None,
        )  # fmt: skip
        channel = self._usable_channel(key, details.get("channelId"), increment)
        unit_price = Money(price, currency)
        if channel is not None:
            plan = dataclasses.replace(
                common, action="voucher", deposit=channel.deposit, channel_id=channel.id,
                base=channel.highest_signed,
            )  # fmt: skip
            # An adopted channel's deposit was reserved by no entry of this journal: the first
            # voucher on it reserves what it can still spend, like an open reserves its deposit.
            unreserved = _unreserved(channel)
            details = {"session": plan, "unit_price": unit_price, "channel_id": channel.id,
                       "deposit": Money(channel.deposit, currency)}  # fmt: skip
            if unreserved:
                details["reserves"] = Money(unreserved, currency)
            return Quote(
                challenge=challenge,
                method=self.name,
                intent="session",
                amount=Money(unreserved, currency),
                payees=(Payee(plan.payee, unreserved),),
                expires=expires,
                network=currency.network,
                details=details,
                reference=None,
            )
        suggested = request.get("suggestedDeposit")
        wanted = self.deposit or self.max_deposit
        if suggested is not None:
            wanted = min(_amount(suggested, "suggestedDeposit", refuse), self.max_deposit)
        deposit = max(wanted, increment)
        if deposit > self.max_deposit:
            raise BudgetExceeded(
                f"tempo session: one unit ({increment}) needs more than max_deposit "
                f"({self.max_deposit})",
                rule="tempo.max_deposit",
                challenge=challenge,
            )
        plan = dataclasses.replace(common, deposit=deposit)
        max_fee = None
        if not sponsored:
            fee = -(-self.open_gas_limit * self.max_fee_per_gas // _ATTO_PER_BASE_UNIT)
            max_fee = Money(fee, currency)
        return Quote(
            challenge=challenge,
            method=self.name,
            intent="session",
            amount=Money(deposit, currency),
            payees=(Payee(plan.payee, deposit),),
            expires=expires,
            network=currency.network,
            max_fee=max_fee,
            details={"session": plan, "unit_price": unit_price,
                     "deposit": Money(deposit, currency)},
        )  # fmt: skip

    def _usable_channel(self, key: str, named: object, increment: int) -> ChannelRecord | None:
        if self._store is None:
            return None
        found = self._store.find(self.name, key)
        if isinstance(named, str):
            # The server names the channel it knows: prefer it when it is ours.
            found.sort(key=lambda record: record.id != named.lower())
        for record in found:
            if record.remaining >= increment:
                return record
        return None

    # --- pay ---------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Open a channel (sign the open transaction and the first voucher) or sign the next
        voucher on an open one; both are recorded in the channel record first."""
        plan: SessionPlan = quote.details["session"]
        source = f"did:pkh:eip155:{plan.chain_id}:{self.signer.address}"
        if plan.action == "voucher":
            assert plan.channel_id is not None
            prepay = self._paid_prepay(plan, quote)
            cumulative, signature, deposit = yield from self._next_voucher(
                plan,
                plan.channel_id,
                lambda current: max(current + plan.increment, prepay(current)),
                flow_sends=True,
            )
            # For the stream handler (``_StreamHandler``): what this request signed and the
            # deposit then, so it starts from them without reading the record again.
            with self._locks_guard:
                self._paid_signed[plan.channel_id] = (quote.challenge.id, cumulative, deposit)
            return PaymentProof(
                payload={
                    "action": "voucher",
                    "channelId": plan.channel_id,
                    "cumulativeAmount": str(cumulative),
                    "signature": signature,
                },
                source=source,
                reference=plan.channel_id,
            )
        return (yield from self._open(plan, quote, context, source))

    def _paid_prepay(self, plan: SessionPlan, quote: Quote) -> Callable[[int], int]:
        """What the paid request's voucher may prepay, as a function of the highest signed
        cumulative ``current`` (base units): on a channel that streamed in this process (so the
        server's ``spent`` and the wallet that metered it are known), the cumulative the
        stream's first prepaid voucher would sign at once (``_StreamHandler._prepay_target`` at
        zero units): ``min(current, spent) + increment * max_prepaid_units``, within the
        refusal rule (``current + increment * max_prepaid_units``), the deposit and the
        wallet's per-payment/per-call caps (``current + cap``). So the stream starts with the
        server's allowance paid and needs no voucher of its own before half of it is used.
        Otherwise ``0`` (the paid voucher adds one ``increment``, as without prepaying)."""
        ahead = self.max_prepaid_units
        with self._locks_guard:
            streamed = self._streamed.get(plan.channel_id or "")
        if ahead <= 1 or streamed is None:
            return lambda current: 0
        spent, guard = streamed
        cap = _call_cap(quote, guard, plan.origin, self.name)
        increment = plan.increment

        def target(current: int) -> int:
            allowed = min(current, spent) + increment * ahead
            bound = plan.deposit if cap is None else min(plan.deposit, current + cap)
            return min(allowed, bound)

        return target

    def _streamed_on(self, channel_id: str, spent: int | None, guard: Any) -> None:
        """A stream on ``channel_id`` reported the server's ``spent`` (base units): kept
        (highest seen) with the wallet that metered it, for ``_paid_prepay``."""
        if spent is None:
            return
        with self._locks_guard:
            known = self._streamed.get(channel_id)
            self._streamed[channel_id] = (max(spent, known[0] if known else 0), guard)

    def _open(
        self, plan: SessionPlan, quote: Quote, context: PaymentContext, source: str
    ) -> Generator[Effect, Any, PaymentProof]:
        store = self.channels
        salt = "0x" + secrets.token_bytes(32).hex()
        channel_id = channel_id_v1(
            payer=self.signer.address, payee=plan.payee, token=plan.token, salt=salt,
            authorized_signer=_ZERO, escrow=plan.escrow, chain_id=plan.chain_id,
        )  # fmt: skip
        calls = (
            Call(address_bytes(plan.token), 0, approve_data(plan.escrow, plan.deposit)),
            Call(
                address_bytes(plan.escrow),
                0,
                open_data(plan.payee, plan.token, plan.deposit, salt, _ZERO),
            ),
        )
        raw, reference, valid_before = yield from self._sign_transaction(
            plan, calls, self.open_gas_limit, context
        )
        first = plan.increment
        signature = self._sign_voucher(plan, channel_id, first)
        yield Checkpoint("signed", reference, void_after=datetime.fromtimestamp(valid_before, UTC))
        record = NewChannel(
            id=channel_id,
            method=self.name,
            origin=plan.origin,
            payee=plan.payee,
            currency=plan.token,
            network=f"eip155:{plan.chain_id}",
            lookup_key=plan.lookup_key,
            details={"protocol": "v1", "escrow": plan.escrow, "chainId": plan.chain_id,
                     "token": plan.token, "salt": salt, "authorizedSigner": _ZERO,
                     "payer": self.signer.address.lower(), "price": str(plan.price),
                     "unitType": plan.unit_type},
            deposit=plan.deposit,
            highest_signed=first,
            voucher=signature,
            deposit_ref=reference,
        )  # fmt: skip
        # Written (fsync) before the open can leave the process.
        yield JournalWrite(lambda: store.open(record))
        return PaymentProof(
            payload={
                "action": "open",
                "type": "transaction",
                "channelId": channel_id,
                "transaction": "0x" + raw.hex(),
                "cumulativeAmount": str(first),
                "signature": signature,
            },
            source=source,
            reference=reference,
        )

    def _sign_transaction(
        self, plan: SessionPlan, calls: tuple[Call, ...], gas_limit: int, context: PaymentContext
    ) -> Generator[Effect, Any, tuple[bytes, str, int]]:
        """Sign ``calls`` in one ``0x76`` on the expiring-nonce lane; returns the bytes to send
        (the ``0x78`` hand-off when sponsored), the reference and ``valid_before``."""
        try:
            gas_price = yield from self._charge._current_gas_price(plan.rpc_url)
            offset = yield from self._charge._chain_time_offset(plan.rpc_url)
        except (RpcError, EffectFailed) as error:
            raise NothingSigned(f"tempo session: {error.reason}; nothing was signed") from error
        if gas_price > self.max_fee_per_gas:
            raise NothingSigned(
                f"tempo session: gas price {gas_price} is above the allowed "
                f"{self.max_fee_per_gas}; nothing was signed"
            )
        now = int(context.now.timestamp()) + offset
        valid_before = now + int(self.expiry_window)
        if plan.expires_at is not None:
            valid_before = min(valid_before, plan.expires_at)
        if valid_before < now + 2:
            raise NothingSigned("tempo session: the challenge expires before a transaction could")
        tx = TempoTransaction(
            chain_id=plan.chain_id,
            calls=calls,
            gas_limit=gas_limit,
            max_fee_per_gas=min(2 * gas_price, self.max_fee_per_gas),
            nonce_key=EXPIRING_NONCE_KEY,
            valid_before=valid_before,
            fee_token=None if plan.sponsored else address_bytes(plan.token),
            sponsored=plan.sponsored,
        )
        digest = tx.signing_hash()
        signature = self.signer.sign_hash(digest)
        if plan.sponsored:
            raw = tx.fee_payer_envelope(address_bytes(self.signer.address), signature)
            return raw, SIGNING_HASH_PREFIX + "0x" + digest.hex(), valid_before
        raw = tx.encode(signature)
        return raw, tx_hash(raw), valid_before

    def _sign_voucher(self, plan: SessionPlan, channel_id: str, cumulative: int) -> str:
        digest = voucher_digest("v1", plan.chain_id, plan.escrow, channel_id, cumulative)
        return "0x" + self.signer.sign_raw_hash(digest).hex()

    def _lock(self, channel_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(channel_id, threading.Lock())

    def _next_voucher(
        self, plan: SessionPlan, channel_id: str, target: Any, *, flow_sends: bool = False
    ) -> Generator[Effect, Any, tuple[int, str, int]]:
        """Sign and durably record the voucher ``target(highest signed)`` (a compare-and-set
        in the journal: a voucher is never signed twice for one amount nor ever lower);
        returns its cumulative amount, its signature and the channel's deposit then.

        ``flow_sends``: the payment flow sends this voucher (the paid request, from ``pay``).
        Then, when the channel records share the wallet journal's SQLite WAL
        (``ChannelStore.wal_shared_with_journal``), the record commits without an fsync of
        its own: ``mpp_client.flow._attempt`` writes the payment's ``sent`` step after ``pay``
        returned and before ``_send_paid`` lets the credential out, and the SQLite journal
        commits ``sent`` with ``synchronous=FULL``, an fsync of the same WAL that makes this
        earlier commit durable with it. In-stream vouchers (sent by the handler itself), a
        store of its own and PostgreSQL keep the fsync of their voucher write."""
        store = self.channels
        fsync = not (flow_sends and getattr(store, "wal_shared_with_journal", False))

        def bounded(current: int, deposit: int) -> int:
            cumulative = int(target(current))
            if cumulative > deposit:
                raise NothingSigned(
                    f"tempo session: a voucher for {cumulative} would exceed the "
                    f"deposit {deposit} of channel {channel_id}"
                )
            return cumulative

        def sign(cumulative: int) -> str:
            return self._sign_voucher(plan, channel_id, cumulative)

        def write() -> tuple[int, str, int]:
            # The read, the signature and the compare-and-set in one journal transaction
            # (``ChannelStore.sign_next``): a voucher is never signed twice for one amount nor
            # ever lower, and it is recorded before it can be sent.
            with self._lock(channel_id):
                try:
                    return store.sign_next(channel_id, bounded, sign, fsync=fsync)
                except JournalError:
                    if store.get(channel_id) is None:
                        raise NothingSigned(
                            f"tempo session: no record of channel {channel_id}"
                        ) from None
                    raise

        result: tuple[int, str, int] = yield JournalWrite(write)
        return result

    # --- after the server answered -------------------------------------------------------------

    def on_receipt(self, quote: Quote, proof: PaymentProof, receipt: Receipt | None) -> None:
        plan = quote.details.get("session")
        if not isinstance(plan, SessionPlan) or self._store is None:
            return
        channel_id = str(proof.payload.get("channelId", ""))
        accepted = _accepted(receipt, channel_id)
        if accepted is None:
            log.warning("tempo session: the receipt for channel %s is missing or invalid; "
                        "the accepted amount is not moved", channel_id)  # fmt: skip
            return
        self._store.accept(channel_id, accepted)
        if "reserves" in quote.details:
            # The adopted channel's remainder is now held by this payment's entry (reference:
            # the channel id): later vouchers add nothing, and the close's refund is taken off
            # it. Only after the server accepted: until then every request reserves it again,
            # too much rather than too little.
            self._store.topped_up(channel_id, plan.deposit, channel_id)

    def on_gone(self, quote: Quote, proof: PaymentProof) -> None:
        """410: the server no longer knows the channel (``channel-not-found``/``-finalized``):
        it is evicted from reuse (its deposit stays held until a close or a forced close)."""
        channel_id = proof.payload.get("channelId")
        if isinstance(channel_id, str) and self._store is not None:
            self._store.set_state(channel_id.lower(), "evicted")

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, bool]:
        """A refused open is a signed transaction the server still holds: void only once the
        chain is past its ``valid_before`` without it (``TempoCharge``'s proof)."""
        plan = quote.details.get("session")
        if isinstance(plan, SessionPlan) and plan.action == "voucher":
            # A voucher's entry holds nothing (amount 0): whatever the server does with the
            # voucher is bounded by the deposit, whose entry stays held, and the channel
            # record keeps it as signed. Releasing a zero hold moves nothing, and keeps a
            # refused voucher from tripping the wallet's breaker.
            return quote.amount.amount == 0
        if not isinstance(plan, SessionPlan) or plan.action != "open":
            return False
        result = yield from self.lookup(proof.reference or "", void_after=None)
        return result.status == "failed"

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """An open or top-up is a transaction: asked as ``TempoCharge`` asks; a voucher
        (reference = channel id) is covered by the channel's deposit and is ``pending``."""
        return (yield from self._charge.lookup(reference, void_after=void_after))

    # --- streams -----------------------------------------------------------------------------

    def stream_handler(self, context: StreamContext) -> _StreamHandler | None:
        """Meter a paid event stream of this session (``mpp_client.session``)."""
        quote = context.payment.quote
        plan = quote.details.get("session") if quote is not None else None
        if not isinstance(plan, SessionPlan) or self._store is None:
            return None
        proof_channel = plan.channel_id
        if proof_channel is None:
            found = self._store.find(self.name, plan.lookup_key, states=("open", "opening"))
            proof_channel = found[0].id if found else None
        if proof_channel is None:
            return None
        return _StreamHandler(self, plan, proof_channel, context)

    # --- closing -------------------------------------------------------------------------------

    def close(
        self, url: str, channel_id: str | None = None, *, client: Any = None
    ) -> ChannelRecord:
        """Close a channel with its server at ``url`` (the session resource): send the final
        voucher (the highest signed), check on chain that the channel is finalized, then
        record the refund and return it to the budgets. ``channel_id`` defaults to the newest
        open channel of ``url``'s origin. ``client``: an ``httpx.Client`` for the calls."""
        from mpp_client.runner import SyncRunner
        from mpp_client.trampoline import drive

        runner = SyncRunner(client)
        try:
            return drive(self._close(url, channel_id), runner.perform)
        finally:
            runner.close()

    async def aclose(
        self, url: str, channel_id: str | None = None, *, client: Any = None
    ) -> ChannelRecord:
        """``close`` for async code (``client``: an ``httpx.AsyncClient``)."""
        from mpp_client.runner import AsyncRunner
        from mpp_client.trampoline import drive_async

        runner = AsyncRunner(client)
        try:
            return await drive_async(self._close(url, channel_id), runner.perform)
        finally:
            await runner.aclose()

    def _close(self, url: str, channel_id: str | None) -> Generator[Effect, Any, ChannelRecord]:
        from mpp_client.driver import url_origin

        store = self.channels
        record = store.get(channel_id) if channel_id else None
        if record is None:
            origin = url_origin(url)
            candidates = [
                r for r in store.channels(method=self.name)
                if r.origin == origin and r.state in ("open", "opening", "closing")
            ]  # fmt: skip
            record = candidates[-1] if candidates else None
        if record is None:
            raise ValueError(f"no open channel for {url}")
        if record.state == "closed":
            return record
        if url_origin(url) != record.origin:
            raise ValueError(f"channel {record.id} was opened with {record.origin}, not {url}")
        challenge = yield from _fresh_challenge(url, record, {})
        payload = {
            "action": "close",
            "channelId": record.id,
            "cumulativeAmount": str(record.highest_signed),
            "signature": record.voucher,
        }
        credential = Credential(challenge, payload, f"did:pkh:eip155:{_chain(record)}:"
                                f"{self.signer.address}")  # fmt: skip
        yield JournalWrite(lambda: store.set_state(record.id, "closing"))
        reply: HttpReply = yield HttpCall(
            "POST", url, {"authorization": credential.to_header()}, b"", timeout=60.0
        )
        if reply.status == 410:
            yield JournalWrite(lambda: store.set_state(record.id, "evicted"))
        elif reply.status >= 300:
            raise MethodError(f"tempo session: the server answered the close with {reply.status}")
        # Whatever the server said, the chain decides: finalized, and how much was settled.
        result = yield from rpc_call(
            _rpc_of(self, record),
            "eth_call",
            [{"to": record.details["escrow"], "data": "0x" + get_channel_data(record.id).hex()},
             "latest"],
            timeout=self.timeout,
        )  # fmt: skip
        onchain = decode_channel(str(result))
        if not onchain.finalized:
            raise MethodError(
                f"tempo session: channel {record.id} is not finalized on chain; its deposit "
                "stays held (close again, or force it with request_close/withdraw)"
            )
        paid, refund = onchain.settled, onchain.deposit - onchain.settled
        closed: ChannelRecord = yield JournalWrite(
            lambda: store.settle_close(record.id, paid=paid, refund=refund)
        )
        return closed

    # --- bootstrap: recover a channel from the server ----------------------------------------

    def bootstrap(self, url: str, *, client: Any = None) -> ChannelRecord | None:
        """Ask the session resource at ``url`` which channel of ours it holds (the spec's
        bootstrap preflight): ``HEAD`` it; when it answers 402 with a zero-amount ``tempo``
        ``charge`` challenge, prove this payer's identity with the EIP-712 proof (nothing is
        paid) and ``HEAD`` again; a 2xx answer may carry ``Payment-Session`` and
        ``Payment-Session-Snapshot``. The snapshot is trusted only once checked: its channel id
        derives from its descriptor (payer = this signer, escrow allowed for the chain), its
        highest voucher is a valid low-s signature of ours for exactly ``acceptedCumulative``,
        and the escrow on chain shows the channel open with that payee and token and a deposit
        covering it. Then the channel is recorded (or its record raised to that voucher: a
        voucher is never signed lower), and later requests reuse it instead of opening one.
        Returns the record, or ``None`` when the server offers no bootstrap or no channel.
        Adopting moves no money; the first voucher on the adopted channel reserves what it can
        still spend (deposit less the highest voucher) against the wallet's caps, as an open
        reserves its deposit. v1 only (a v2 snapshot is refused like v2 payment)."""
        from mpp_client.runner import SyncRunner
        from mpp_client.trampoline import drive

        runner = SyncRunner(client)
        try:
            return drive(self._bootstrap(url), runner.perform)
        finally:
            runner.close()

    async def abootstrap(self, url: str, *, client: Any = None) -> ChannelRecord | None:
        """``bootstrap`` for async code (``client``: an ``httpx.AsyncClient``)."""
        from mpp_client.runner import AsyncRunner
        from mpp_client.trampoline import drive_async

        runner = AsyncRunner(client)
        try:
            return await drive_async(self._bootstrap(url), runner.perform)
        finally:
            await runner.aclose()

    def _bootstrap(self, url: str) -> Generator[Effect, Any, ChannelRecord | None]:
        from mpp_client.driver import url_origin
        from mpp_client.protocol.base64url import b64url_decode

        origin = url_origin(url).rstrip("/").lower()
        headers = {"accept-payment": "tempo/charge"}
        reply: HttpReply = yield HttpCall("HEAD", url, dict(headers), b"", timeout=30.0)
        if reply.status == 402:
            values = reply.headers.get("www-authenticate")
            offered = [
                c for c in parse_challenges([values] if values else [])
                if c.method == "tempo" and c.intent == "charge"
                and isinstance(c.request_data, Mapping) and c.request_data.get("amount") == "0"
            ]  # fmt: skip
            if not offered:
                return None
            challenge = offered[0]

            def refuse(reason: str) -> InvalidChargeRequest:
                return InvalidChargeRequest(f"tempo bootstrap: {reason}", challenge=challenge)

            details = challenge.request_data.get("methodDetails") or {}
            chain_id = self._charge._chain_for(
                details.get("chainId") if isinstance(details, Mapping) else None, challenge
            )
            context = PaymentContext(origin, url, "HEAD", utcnow(self.clock))
            self._charge._check_proof_realm(challenge, context, refuse)
            digest = proof_digest(chain_id, self.signer.address, challenge.id, challenge.realm)
            proof = {"type": "proof", "signature": "0x" + self.signer.sign_raw_hash(digest).hex()}
            source = f"did:pkh:eip155:{chain_id}:{self.signer.address}"
            headers["authorization"] = Credential(challenge, proof, source).to_header()
            reply = yield HttpCall("HEAD", url, dict(headers), b"", timeout=30.0)
        raw = reply.headers.get("payment-session-snapshot")
        if not 200 <= reply.status < 300 or raw is None:
            return None
        try:
            data = json.loads(b64url_decode(raw))
        except ValueError as exc:
            raise MethodError(
                "tempo bootstrap: the session snapshot is not base64url JSON"
            ) from exc
        named = reply.headers.get("payment-session")
        return (yield from self._adopt_snapshot(origin, data, named))

    def _adopt_snapshot(
        self, origin: str, data: Any, named: str | None
    ) -> Generator[Effect, Any, ChannelRecord]:
        """Check a (v1) session snapshot against its derivation, our signature and the chain,
        then record the channel; ``MethodError`` for anything that does not check out."""

        def bad(reason: str) -> MethodError:
            return MethodError(f"tempo bootstrap: the snapshot is refused: {reason}")

        try:
            snapshot = SessionSnapshot.from_json(data)
        except ValueError as exc:
            raise bad(str(exc)) from exc
        chain_id, escrow, d = snapshot.chain_id, snapshot.escrow, snapshot.descriptor
        if chain_id not in self.chains or escrow not in self.escrows.get(chain_id, frozenset()):
            raise bad(f"escrow {escrow} on chain {chain_id} is not allowed")
        if escrow == V2_PRECOMPILE:
            raise bad("v2 channels are not paid by this client")
        if named is not None and named.lower() != snapshot.channel_id:
            raise bad("Payment-Session names another channel")
        if d.payer != self.signer.address.lower():
            raise bad("the channel belongs to another payer")
        if d.operator != _ZERO or int(d.expiring_nonce_hash, 16) != 0:
            raise bad("a v1 descriptor has no operator nor expiringNonceHash")
        derived = channel_id_v1(
            payer=d.payer, payee=d.payee, token=d.token, salt=d.salt,
            authorized_signer=d.authorized_signer, escrow=escrow, chain_id=chain_id,
        )  # fmt: skip
        if derived != snapshot.channel_id:
            raise bad("its channel id does not derive from its descriptor")
        if not snapshot.settled <= snapshot.accepted <= snapshot.deposit:
            raise bad("settled/accepted/deposit are inconsistent")
        if snapshot.spent > snapshot.accepted:
            raise bad("it spends more than was accepted")
        voucher = data.get("highestVoucher") if isinstance(data, dict) else None
        if not isinstance(voucher, dict):
            raise bad("it has no highest voucher")
        signature = str(voucher.get("signature", ""))
        if str(voucher.get("channelId", "")).lower() != snapshot.channel_id or voucher.get(
            "cumulativeAmount"
        ) != str(snapshot.accepted):
            raise bad("its highest voucher is not for acceptedCumulative of this channel")
        signer = d.authorized_signer if d.authorized_signer != _ZERO else d.payer
        digest = voucher_digest("v1", chain_id, escrow, snapshot.channel_id, snapshot.accepted)
        try:
            raw_signature = bytes.fromhex(signature.removeprefix("0x"))
            check_low_s(raw_signature)
            ours = recover_address(digest, raw_signature).lower() == signer
        except ValueError:
            ours = False
        if not ours:
            raise bad("its highest voucher is not a valid signature of this payer")
        rpc_url = self._charge.rpc_urls[chain_id]
        result = yield from rpc_call(
            rpc_url, "eth_call",
            [{"to": escrow, "data": "0x" + get_channel_data(snapshot.channel_id).hex()}, "latest"],
            timeout=self.timeout,
        )  # fmt: skip
        onchain = decode_channel(str(result))
        if (
            not onchain.exists or onchain.finalized or onchain.close_requested_at
            or onchain.payer != d.payer or onchain.payee != d.payee or onchain.token != d.token
            or onchain.authorized_signer != d.authorized_signer
        ):  # fmt: skip
            raise bad("the escrow does not show this channel open for this payee and token")
        if not onchain.settled <= snapshot.accepted <= onchain.deposit:
            # More settled than the voucher shown means a higher one exists: the snapshot
            # hides it, and a voucher must never be signed below one already given.
            raise bad("its amounts disagree with the escrow")
        store = self.channels
        channel_id, accepted = snapshot.channel_id, snapshot.accepted
        key = "|".join(
            [origin, d.payee, d.token, escrow, str(chain_id), self.signer.address.lower()]
        )

        def adopt() -> ChannelRecord:
            record = store.get(channel_id)
            if record is None:
                store.open(NewChannel(
                    id=channel_id, method=self.name, origin=origin, payee=d.payee,
                    currency=d.token, network=f"eip155:{chain_id}", lookup_key=key,
                    details={"protocol": "v1", "escrow": escrow, "chainId": chain_id,
                             "token": d.token, "salt": d.salt,
                             "authorizedSigner": d.authorized_signer, "payer": d.payer,
                             "bootstrapped": True},
                    deposit=onchain.deposit, highest_signed=accepted, voucher=signature,
                ))  # fmt: skip
            elif accepted > record.highest_signed:
                store.record_voucher(channel_id, accepted, signature)
            store.accept(channel_id, accepted)
            found = store.get(channel_id)
            assert found is not None
            return found

        adopted: ChannelRecord = yield JournalWrite(adopt)
        return adopted

    # --- forced close (the server is gone) ---------------------------------------------------

    def request_close(self, channel_id: str, *, client: Any = None) -> int:
        """Start a forced close of ``channel_id`` on chain (``requestClose``, payer only) and
        return the earliest Unix time (chain clock) ``withdraw`` can succeed. The payee may
        still settle its highest voucher during the grace period."""
        from mpp_client.runner import SyncRunner
        from mpp_client.trampoline import drive

        record = self._record(channel_id)
        runner = SyncRunner(client)
        try:
            drive(self._payer_call(record, request_close_data(record.id)), runner.perform)
            onchain = drive(self._read_channel(record), runner.perform)
        finally:
            runner.close()
        self.channels.set_state(record.id, "closing")
        return onchain.close_requested_at + CLOSE_GRACE_SECONDS

    def withdraw(self, channel_id: str, *, client: Any = None) -> ChannelRecord:
        """Finish a forced close after the grace period (``withdraw``): the unspent deposit
        comes back on chain, and only then to the budgets."""
        from mpp_client.runner import SyncRunner
        from mpp_client.trampoline import drive

        record = self._record(channel_id)
        runner = SyncRunner(client)
        try:
            drive(self._payer_call(record, withdraw_data(record.id)), runner.perform)
            onchain = drive(self._read_channel(record), runner.perform)
        finally:
            runner.close()
        if not onchain.finalized:
            raise MethodError(f"tempo session: channel {record.id} is not finalized after withdraw")
        return self.channels.settle_close(
            record.id, paid=onchain.settled, refund=onchain.deposit - onchain.settled
        )

    def _record(self, channel_id: str) -> ChannelRecord:
        record = self.channels.get(channel_id.lower())
        if record is None:
            raise ValueError(f"no channel {channel_id}")
        return record

    def _read_channel(self, record: ChannelRecord) -> Generator[Effect, Any, OnChainChannel]:
        data = "0x" + get_channel_data(record.id).hex()
        call = {"to": record.details["escrow"], "data": data}
        result = yield from rpc_call(
            _rpc_of(self, record), "eth_call", [call, "latest"], timeout=self.timeout
        )
        return decode_channel(str(result))

    def _payer_call(self, record: ChannelRecord, data: bytes) -> Generator[Effect, Any, None]:
        """Sign and broadcast one escrow call from the payer (fee in the channel's token)."""
        chain_id = _chain(record)
        plan = SessionPlan(
            action="forced", chain_id=chain_id, rpc_url=_rpc_of(self, record),
            escrow=record.details["escrow"], token=record.currency, payee=record.payee, price=0,
            increment=0, deposit=record.deposit, sponsored=False, lookup_key=record.lookup_key,
            origin=record.origin, unit_type=None, expires_at=None, channel_id=record.id,
        )  # fmt: skip
        # The chain's clock may have jumped (a test's evm_increaseTime): measure it afresh.
        self._charge._chain_offset.pop(plan.rpc_url, None)
        context = PaymentContext(record.origin, record.origin, "POST", utcnow(self.clock))
        calls = (Call(address_bytes(plan.escrow), 0, data),)
        raw, reference, _ = yield from self._sign_transaction(plan, calls, 400_000, context)
        receipt = yield from rpc_call(
            plan.rpc_url, "eth_sendRawTransactionSync", ["0x" + raw.hex()],
            timeout=60.0, retry_safe=False,
        )  # fmt: skip
        if not isinstance(receipt, Mapping) or receipt.get("status") != "0x1":
            raise MethodError(f"tempo session: escrow call {reference} did not succeed")


def _chain(record: ChannelRecord) -> int:
    return int(record.details["chainId"])


def _rpc_of(method: TempoSession, record: ChannelRecord) -> str:
    return method._charge.rpc_urls[_chain(record)]


def _accepted(receipt: Receipt | None, channel_id: str) -> int | None:
    """``acceptedCumulative`` of a session receipt for ``channel_id``, or ``None`` when the
    receipt is not one (wrong method, another channel, not an amount)."""
    if receipt is None or receipt.method != "tempo" or receipt.status != "success":
        return None
    extra = receipt.extra
    named = extra.get("channelId", receipt.reference)
    if not isinstance(named, str) or named.lower() != channel_id.lower():
        return None
    if receipt.reference.lower() != channel_id.lower():
        return None
    return _int_field(extra.get("acceptedCumulative"))


def _int_field(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 78:
        return int(value)
    return None


def _amount(raw: object, where: str, refuse: Any) -> int:
    value = _int_field(raw) if isinstance(raw, str) else None
    if value is None or value > MAX_UINT128:
        raise refuse(f"{where} must be a string of base-unit digits (uint128)")
    return value


def _unreserved(channel: ChannelRecord) -> int:
    """What an adopted (bootstrapped) channel can still spend and no entry of this journal
    holds (base units); 0 for a channel this journal opened or already reserved."""
    if channel.deposit_refs or not channel.details.get("bootstrapped"):
        return 0
    return max(0, channel.deposit - channel.highest_signed)


def _fresh_challenge(
    url: str, record: ChannelRecord, headers: Mapping[str, str]
) -> Generator[Effect, Any, Challenge]:
    """A fresh session challenge of ``url`` for the same payee, escrow and chain (``HEAD``
    answers it with a 402 without starting a stream; see ``_FALLBACK_METHOD``)."""
    reply: HttpReply = yield HttpCall("HEAD", url, dict(headers), b"", timeout=30.0)
    found = _session_challenge(reply, record)
    if found is None:
        reply = yield HttpCall(_FALLBACK_METHOD, url, dict(headers), b"", timeout=30.0)
        found = _session_challenge(reply, record)
    return found if found is not None else _matching_challenge(reply, record)


#: Servers that run the bootstrap preflight (mppx's among them) may answer a ``HEAD`` without a
#: credential with only the zero-amount ``charge`` challenge of the preflight. A request without
#: a credential moves no money, so the session challenge is then asked for with a ``GET``, which
#: such a server answers with its usual 402.
_FALLBACK_METHOD = "GET"


def _session_challenge(reply: HttpReply, record: ChannelRecord) -> Challenge | None:
    """The reply's session challenge for ``record``'s channel, or None when it has none."""
    try:
        return _matching_challenge(reply, record)
    except MethodError:
        return None


def _matching_challenge(reply: HttpReply, record: ChannelRecord) -> Challenge:
    if reply.status != 402:
        raise MethodError(f"tempo session: asked for a fresh challenge, got {reply.status}")
    values = reply.headers.get("www-authenticate")
    for challenge in parse_challenges([values] if values else []):
        if challenge.method != "tempo" or challenge.intent != "session":
            continue
        request: Any = challenge.request_data
        details = request.get("methodDetails") or {} if isinstance(request, Mapping) else {}
        if (
            isinstance(request, Mapping)
            and str(request.get("recipient", "")).lower() == record.payee
            and str(request.get("currency", "")).lower() == record.currency
            and str(details.get("escrowContract", "")).lower() == record.details["escrow"]
        ):
            return challenge
    raise MethodError("tempo session: the server offered no challenge for this channel")


class _StreamHandler:
    """Pays the ``payment-need-voucher`` events of one stream, prepays ahead of them (with
    ``max_prepaid_units`` above 1) and keeps the stream's final receipt.

    Prepaying: the server's balance is what it accepted less what it spent. The handler
    tracks what the server spent (its receipt's ``spent`` when the stream began, plus one
    ``increment`` per unit received). The stream starts with a whole allowance paid (the
    paid request's voucher, or a voucher posted before the first chunk), and each
    ``payment-need-voucher`` is answered with a voucher for ``max_prepaid_units`` units
    beyond what was received, so the server asks once per allowance, and a stream of up to
    ``max_prepaid_units`` units needs no voucher of its own. (Posted inline, not from a worker
    thread: a reader busy with a fast stream holds the GIL, and a worker would wait for it,
    not for the network; so a refill before the server asks would cost the reader the same
    wait, and one voucher more per allowance.)
    Every prepaid voucher is bounded by: the refusal rule (``base + increment * (units +
    max_prepaid_units)``), the deposit (prepaying never tops up), and the wallet's
    per-payment/per-call caps for this call (``base + cap``). It is durably recorded before it
    is sent, like every voucher, and counts as spent (``SessionStream.spent``) once signed.
    """

    control_events = frozenset({"payment-need-voucher", "payment-receipt"})

    def __init__(
        self, method: TempoSession, plan: SessionPlan, channel_id: str, context: StreamContext
    ) -> None:
        self.method = method
        self.plan = plan
        self.channel_id = channel_id
        self.context = context
        self.challenge = context.payment.quote.challenge if context.payment.quote else None
        # The cumulative signed before this request paid: what the stream's units add to.
        self.base = plan.base if plan.action == "voucher" else 0
        context.stream.details["channelId"] = channel_id
        quote = context.payment.quote
        # What the paid request's voucher signed on this channel and the deposit then (kept by
        # ``pay``), else the record as it stands.
        with method._locks_guard:
            known = method._paid_signed.get(channel_id)
        highest: int | None
        deposit: int | None
        if (
            plan.channel_id == channel_id
            and known is not None
            and quote is not None
            and known[0] == quote.challenge.id
        ):
            highest, deposit = known[1], known[2]
        else:
            record = method.channels.get(channel_id)
            highest, deposit = (
                (record.highest_signed, record.deposit) if record is not None else (None, None)
            )
        signed = self.base
        self.deposit = plan.deposit
        if highest is not None and deposit is not None:
            signed, self.deposit = highest, deposit
            context.stream.details["highestSigned"] = highest
            context.stream.spent = max(0, highest - self.base)
        # What the server confirmed it accepted (its receipts), and what it had spent when
        # the stream began: the paid answer's receipt (the flow's, parsed from the same
        # header), else assume everything signed before.
        paid = context.payment.receipt
        if paid is None:
            paid = _header_receipt_of(context.header("payment-receipt"))
        self.confirmed = _accepted(paid, channel_id) or 0
        # An accepted cumulative the record holds at least (``store.accept`` never lowers it):
        # ``on_receipt`` wrote the paid answer's for the channel the paid request's voucher
        # was on (clamped, as every ``accept``, to what was signed).
        self.written = 0
        if plan.channel_id == channel_id:
            self._wrote(self.confirmed)
        spent = _receipt_int(paid, channel_id, "spent")
        self.start = self.base if spent is None else min(spent, self.base)
        method._streamed_on(channel_id, spent, context.guard)
        # The highest cumulative this stream signed or has a job to sign.
        self.planned = signed
        self.call_cap = (
            None if quote is None else _call_cap(quote, context.guard, context.origin, method.name)
        )
        # The highest accepted cumulative a prepaid voucher's answer gave, not yet written.
        self.unwritten = 0
        #: ``data_events`` at which ``on_units`` runs next (``None``: not prepaying).
        self.wake_at: int | None = 0 if method.max_prepaid_units > 1 else None

    def _wrote(self, accepted: int) -> None:
        """``store.accept(accepted)`` was written: the record holds at least ``accepted`` or
        the highest this stream knows signed, whichever is lower."""
        signed = self.context.stream.details.get("highestSigned", 0)
        self.written = max(self.written, min(accepted, signed))

    def on_event(self, event: SseEvent) -> Generator[Any, Any, None]:
        if event.event == "payment-receipt":
            yield from self._receipt(event.data)
            return
        yield from self._need_voucher(event.data)

    def on_units(self, units: int) -> Generator[Any, Any, None]:
        """Prepay at the stream's start (``wake_at`` 0): unless the server's balance already
        covers half of ``max_prepaid_units`` (the paid request's voucher prepaid it, see
        ``TempoSession._paid_prepay``), sign and post the voucher for ``max_prepaid_units``
        units beyond those received. Then wait for the server to ask: a voucher is posted
        inline (the reader waits for its answer either way), so refilling before the server
        runs out would only cost more vouchers than answering its ask with a whole allowance
        (``_need_voucher``)."""
        increment, half = self.plan.increment, max(1, self.method.max_prepaid_units // 2)
        target, capped = self._prepay_target(units)
        self.wake_at = None
        # A prepaid voucher adds at least half the allowance (or reaches a bound).
        if target - self.planned >= increment * half or (capped and target > self.planned):
            self.planned = target
            yield from self._voucher(target, resend=False)

    def _prepay_target(self, units: int) -> tuple[int, bool]:
        """The cumulative to prepay to after ``units`` units (base units), and whether a bound
        other than ``max_prepaid_units`` (the deposit, a cap) set it."""
        increment, ahead = self.plan.increment, self.method.max_prepaid_units
        allowed = self.base + increment * (units + ahead)
        target = min(allowed, self.start + increment * (units + ahead))
        bound = self.deposit
        if self.call_cap is not None:
            bound = min(bound, self.base + self.call_cap)
        return min(target, bound), bound < target

    def on_end(self, complete: bool) -> Generator[Any, Any, None]:
        pending, self.unwritten = self.unwritten, 0
        if pending > self.written:
            store = self.method.channels
            yield JournalWrite(lambda: store.accept(self.channel_id, pending))
            self._wrote(pending)

    def _receipt(self, data: str) -> Generator[Any, Any, None]:
        receipt = receipt_from_event(data)
        accepted = _accepted(receipt, self.channel_id)
        if accepted is None:
            raise SessionStreamError(
                "tempo session: the stream's final receipt is not one for this channel",
                money_moved=None,
            )
        store = self.method.channels
        # With what prepaid vouchers' answers said (not written one by one); nothing to write
        # when the record has it already (the paid answer's receipt said as much).
        written, self.unwritten = max(accepted, self.unwritten), 0
        if written > self.written:
            yield JournalWrite(lambda: store.accept(self.channel_id, written))
            self._wrote(written)
        self.method._streamed_on(
            self.channel_id, _receipt_int(receipt, self.channel_id, "spent"), self.context.guard
        )
        self.context.stream.receipt = receipt
        self.context.stream.details["acceptedCumulative"] = accepted

    def _need_voucher(self, data: str) -> Generator[Any, Any, None]:
        try:
            need = json.loads(data)
        except ValueError:
            need = None
        if not isinstance(need, dict):
            raise SessionStreamError("tempo session: payment-need-voucher is not a JSON object")
        named = need.get("channelId")
        if not isinstance(named, str) or named.lower() != self.channel_id:
            raise SessionStreamError(
                "tempo session: the server asked for a voucher on another channel",
                money_moved=None,
            )
        required = _int_field(need.get("requiredCumulative"))
        if required is None:
            raise SessionStreamError("tempo session: requiredCumulative is not an amount")
        plan = self.plan
        units = self.context.stream.data_events
        allowed = self.base + plan.increment * (units + self.method.max_prepaid_units)
        if required > allowed:
            raise SessionStreamError(
                f"tempo session: the server asked for a cumulative {required}, but {units} "
                f"unit(s) at {plan.increment} each (plus {self.method.max_prepaid_units} paid "
                f"ahead) allow at most {allowed}; refused, nothing more was signed",
                money_moved=None,
            )
        reported = _int_field(need.get("acceptedCumulative"))
        asked = required - reported if reported is not None else 0
        if self.wake_at is not None and 2 * asked > plan.increment * self.method.max_prepaid_units:
            # The server asks for more than half the allowance at a time: prepaying on our
            # own would only send more vouchers than it asks for. Answer its asks alone.
            self.wake_at = None
        if required <= self.confirmed:
            # The server asked before it read a (prepaid) voucher it has since confirmed.
            return
        store = self.method.channels
        record = store.get(self.channel_id)
        if record is None:
            raise SessionStreamError("tempo session: the channel record is gone")
        self.deposit = record.deposit
        if required > record.deposit:
            yield from self._top_up(record, required)
            topped = store.get(self.channel_id)
            self.deposit = topped.deposit if topped is not None else required
        target = required
        if self.method.max_prepaid_units > 1:
            target = max(required, self._prepay_target(units)[0])
        self.planned = max(self.planned, target)
        yield from self._voucher(target, resend=True)

    def _voucher(self, target: int, *, resend: bool) -> Generator[Any, Any, None]:
        """Sign (durably recorded first) and post the voucher ``max(highest signed,
        target)``. ``resend``: post it even when it is no higher than one this stream had
        confirmed (the server asked for it)."""
        plan, store = self.plan, self.method.channels
        cumulative, signature, _ = yield from self.method._next_voucher(
            plan, self.channel_id, lambda current: max(current, target)
        )
        # Spent once signed (the server may use it as soon as it reads it).
        stream = self.context.stream
        stream.details["highestSigned"] = max(stream.details.get("highestSigned", 0), cumulative)
        stream.spent = max(stream.spent or 0, cumulative - self.base)
        if not resend and cumulative <= self.confirmed:
            return
        payload = {
            "action": "voucher",
            "channelId": self.channel_id,
            "cumulativeAmount": str(cumulative),
            "signature": signature,
        }
        reply = yield from self._send(payload)
        if reply.status == 410:
            yield JournalWrite(lambda: store.set_state(self.channel_id, "evicted"))
            raise SessionStreamError(
                "tempo session: the server no longer knows the channel (410); it is evicted",
                money_moved=None,
            )
        if not 200 <= reply.status < 300:
            raise SessionStreamError(
                f"tempo session: the voucher for {cumulative} was answered {reply.status}",
                money_moved=None,
            )
        receipt = _header_receipt(reply)
        accepted = _accepted(receipt, self.channel_id)
        if accepted is not None:
            if resend:
                yield JournalWrite(lambda: store.accept(self.channel_id, accepted))
                self._wrote(accepted)
            else:
                # What the server accepted can be learnt again from its next receipt, and is
                # never above what was signed: one write at the end of the stream will do.
                self.unwritten = max(self.unwritten, accepted)
            self.confirmed = max(self.confirmed, min(accepted, cumulative))

    def _credential(self, payload: Mapping[str, Any], challenge: Challenge) -> str:
        source = f"did:pkh:eip155:{self.plan.chain_id}:{self.method.signer.address}"
        return Credential(challenge, payload, source).to_header()

    def _challenge(self, fresh: bool) -> Generator[Any, Any, Challenge]:
        challenge = self.challenge
        now = utcnow(self.context.clock)
        usable = (
            challenge is not None
            and not fresh
            and (challenge.expires_at is None or (challenge.expires_at - now).total_seconds() > 5)
        )
        if usable:
            assert challenge is not None
            return challenge
        reply: HttpReply = yield SideRequest("HEAD")
        record = self.method.channels.get(self.channel_id)
        assert record is not None
        found = _session_challenge(reply, record)
        if found is None:
            reply = yield SideRequest(_FALLBACK_METHOD)
            found = _matching_challenge(reply, record)
        if not fresh:
            self.challenge = found
        return found

    def _send(
        self, payload: Mapping[str, Any], *, fresh: bool = False
    ) -> Generator[Any, Any, HttpReply]:
        challenge = yield from self._challenge(fresh)
        # A bodyless POST: a GET would start another stream of the resource.
        reply: HttpReply = yield SideRequest(
            "POST", {"authorization": self._credential(payload, challenge)}
        )
        return reply

    def _top_up(self, record: ChannelRecord, required: int) -> Generator[Any, Any, None]:
        method, plan = self.method, self.plan
        wanted = max(method.top_up or record.deposit, required - record.deposit)
        amount = min(wanted, method.max_deposit - record.deposit)
        if amount < required - record.deposit:
            raise SessionStreamError(
                f"tempo session: {required} needs a deposit above max_deposit "
                f"({method.max_deposit}); refused",
                money_moved=None,
            )
        challenge = yield from self._challenge(fresh=True)
        currency = method._charge._currency(plan.chain_id, plan.token)
        fee = -(-method.top_up_gas_limit * method.max_fee_per_gas // _ATTO_PER_BASE_UNIT)
        quote = Quote(
            challenge=challenge, method=method.name, intent="session",
            amount=Money(amount, currency), payees=(Payee(plan.payee, amount),),
            expires=challenge.expires_at, network=currency.network,
            max_fee=None if plan.sponsored else Money(fee, currency),
            details={"session": plan, "top_up": amount},
        )  # fmt: skip
        context = PaymentContext(
            origin=self.context.origin, url=self.context.url, http_method="POST",
            now=utcnow(self.context.clock), call_id=uuid.uuid4().hex,
        )  # fmt: skip
        guard = self.context.guard
        guard.check(quote, context, PaymentOptions())
        reservation = yield from guard.reserve(quote, context, PaymentOptions())
        try:
            calls = (
                Call(address_bytes(plan.token), 0, approve_data(plan.escrow, amount)),
                Call(address_bytes(plan.escrow), 0, top_up_data(self.channel_id, amount)),
            )
            raw, reference, valid_before = yield from method._sign_transaction(
                plan, calls, method.top_up_gas_limit, context
            )
        except BaseException as exc:
            reservation.failed(f"top-up not signed: {type(exc).__name__}", money_moved=False)
            raise
        void_after = datetime.fromtimestamp(valid_before, UTC)
        yield JournalWrite(lambda: reservation.signed(reference, void_after=void_after))
        payload = {
            "action": "topUp",
            "type": "transaction",
            "channelId": self.channel_id,
            "transaction": "0x" + raw.hex(),
            "additionalDeposit": str(amount),
        }
        header = self._credential(payload, challenge)
        from mpp_client.flow import fingerprint

        yield JournalWrite(lambda: reservation.sent(fingerprint(header), reference))
        try:
            reply: HttpReply = yield SideRequest("POST", {"authorization": header})
        except Exception as exc:
            why = f"top-up send failed: {type(exc).__name__}"
            yield JournalWrite(lambda: reservation.unknown(why))
            raise SessionStreamError(
                "tempo session: the top-up may have been sent; its outcome is unknown",
                money_moved=None,
            ) from exc
        if not 200 <= reply.status < 300:
            reason = f"the top-up was answered {reply.status}; the server holds the transaction"
            yield JournalWrite(lambda: reservation.unknown(reason))
            raise SessionStreamError(f"tempo session: {reason}", money_moved=None)
        receipt = _header_receipt(reply)
        yield JournalWrite(lambda: reservation.settled(receipt, reference, receipt_reference=None))
        new_deposit = record.deposit + amount
        store = method.channels
        yield JournalWrite(lambda: store.topped_up(self.channel_id, new_deposit, reference))


def _header_receipt(reply: HttpReply) -> Receipt | None:
    return _header_receipt_of(reply.headers.get("payment-receipt"))


def _header_receipt_of(value: str | None) -> Receipt | None:
    if value is None:
        return None
    try:
        return parse_receipt(value)
    except Exception:
        return None


def _receipt_int(receipt: Receipt | None, channel_id: str, name: str) -> int | None:
    """The amount ``name`` of a session receipt for ``channel_id`` (``None``: not one)."""
    if _accepted(receipt, channel_id) is None:
        return None
    assert receipt is not None
    return _int_field(receipt.extra.get(name))


def _call_cap(quote: Quote, guard: Any, origin: str, method: str) -> int | None:
    """The most (base units of ``quote``'s currency) the per-payment and per-call limits of
    ``guard`` (the wallet) let one call to ``origin`` sign, or ``None`` when none applies.
    Prepaid vouchers stay within it (what the server asks for is bounded by the deposit and
    the agreed price)."""
    policy = getattr(guard, "policy", None)
    limits = getattr(policy, "limits", ())
    if not limits:
        return None
    currency = quote.amount.currency
    origin = origin.rstrip("/").lower()
    caps: list[int] = []
    for limit in limits:
        if limit.per not in ("payment", "call") or not limit.applies(quote, origin):
            continue
        if limit.in_usd:
            if not currency.usd_pegged:
                continue  # priced through a price source: the deposit's reservation bounds it
            scale = 10**currency.decimals
            caps.append(limit.cap.amount * scale // 10**limit.cap.currency.decimals)
        else:
            caps.append(limit.cap.amount)
    return min(caps) if caps else None
