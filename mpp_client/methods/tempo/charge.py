"""``TempoCharge``: pay ``tempo``/``charge`` challenges with TIP-20 stablecoins.

Order of work for one challenge:

1. ``quote`` (no I/O) decodes the request and refuses anything it would not sign: a chain that
   is not pinned, a token not on the allowlist, a malformed amount, recipient or memo, splits
   that are empty, too many, zero, or add up to the whole amount, a mode the challenge does not
   allow, an expiry too close. The ``Quote`` lists every payee and the total, so the wallet's
   policy sees exactly what would be paid.
2. ``pay`` asks the chain for what it does not know yet (chain id once per endpoint, gas price
   at most every ``gas_price_ttl`` seconds, the latest block's timestamp at most every
   ``chain_time_ttl`` seconds), builds one ``0x76`` transaction with one TIP-20 transfer per
   payee on the expiring-nonce lane, signs it, yields ``Checkpoint("signed", reference,
   void_after=valid_before)`` and returns the credential payload:

   * pull (default): the signed transaction, the server broadcasts it;
   * sponsored (``methodDetails.feePayer``): the ``0x78`` hand-off envelope, the server
     co-signs as fee payer and broadcasts;
   * push (opt-in with ``modes``): ``Checkpoint("broadcast")``, we broadcast and wait for the
     receipt, the credential carries the hash. Never used for sponsored challenges.

   A zero amount is paid with an EIP-712 proof instead (see ``proof``).

Time: ``valid_before`` is compared by the chain with its block timestamps, not with our clock.
When the latest block's timestamp and the local clock disagree by more than ``_SKEW_TOLERANCE``
seconds (a local clock that is off, or an idle dev chain such as anvil that only makes blocks
when a transaction arrives), ``valid_before`` is counted from the chain's time instead, still
never past the challenge's ``expires``. Servers simulate the transaction at the latest block
before broadcasting it, and anvil refuses an expiring nonce more than 30 s past that block.

What is proven, and what is not (the flow releases a hold only on ``NothingSent``):

* Every failure before the signature is ``NothingSigned`` (a ``NothingSent``): nothing exists
  that could move value.
* After a push broadcast, any answer but a receipt is unknown, because the node (or a gateway in
  front of it) may have accepted the transaction anyway. We poll for the receipt until
  ``valid_before``; once a block with a timestamp at least ``_VOID_SLACK`` seconds past
  ``valid_before`` exists and the node knows no such transaction, the expiring nonce can never
  be used any more, which is the proof (``NothingSent``). Without it: ``PaymentOutcomeUnknown``.
* A reverted transaction moved none of the charge (the calls are atomic) but paid its network
  fee; ``pay`` reports it with ``money_moved=True`` (value did leave the account), ``lookup``
  reports ``failed`` (the charge did not happen) and says that the fee was paid.
* A sponsored payment's final hash depends on the sponsor's signature, so its reference is
  ``sender-signing-hash:0x<hash>``: a lookup by it can never find the transaction on chain, and
  reports ``pending`` rather than mistaking "not found" for "never mined".

Concurrent payments from one signer: the expiring nonce lane replays by transaction hash, so two
transactions with the same calls and the same ``valid_before`` would be one payment. The
attribution memo binds each primary transfer to its challenge id, which already makes the calls
differ; a server-fixed ``methodDetails.memo`` does not, so every signed hash is remembered until
its ``valid_before`` and a collision moves ``valid_before`` one second earlier (the memo itself
is challenge-bound and must not be changed).
"""

from __future__ import annotations

import heapq
import math
import re
import threading
from collections.abc import Collection, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from mpp_client.clock import SYSTEM_CLOCK, Clock
from mpp_client.effects import Checkpoint, Effect, Sleep
from mpp_client.errors import (
    ChallengeExpired,
    EffectFailed,
    MethodError,
    NotAllowed,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.extras import require_extra
from mpp_client.methods.base import (
    LookupResult,
    Payee,
    PaymentContext,
    PaymentMethod,
    PaymentProof,
    Quote,
)
from mpp_client.methods.tempo import rlp
from mpp_client.methods.tempo.keccak import is_address
from mpp_client.methods.tempo.memo import attribution_memo
from mpp_client.methods.tempo.proof import proof_digest
from mpp_client.methods.tempo.rpc import RpcError, rpc_call
from mpp_client.methods.tempo.signer import Signer
from mpp_client.methods.tempo.tip20 import (
    KNOWN_TOKENS,
    TIP20_DECIMALS,
    TRANSFER_TOPIC,
    TempoToken,
    transfer_data,
)
from mpp_client.methods.tempo.transaction import (
    EXPIRING_NONCE_KEY,
    TransactionTemplate,
    address_bytes,
    tx_hash,
)
from mpp_client.money import Currency, Money
from mpp_client.protocol.timestamps import parse_timestamp

if TYPE_CHECKING:
    from mpp_client.methods.config import SecretField, SecretLoader
    from mpp_client.protocol import Challenge

__all__ = [
    "DEFAULT_MAX_FEE_PER_GAS",
    "DEFAULT_RPC_URLS",
    "SIGNING_HASH_PREFIX",
    "InvalidChargeRequest",
    "NothingSigned",
    "TempoCharge",
]

Mode = Literal["pull", "push"]

#: Public RPC endpoints of the known chains (mainnet, Moderato testnet).
DEFAULT_RPC_URLS: dict[int, str] = {
    4217: "https://rpc.tempo.xyz",
    42431: "https://rpc.moderato.tempo.xyz",
}
MAX_SPLITS = 10
GWEI = 10**9
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,76})$")
_MEMO = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ZERO_ADDRESS = "0x" + "0" * 40
_MAX_UINT256 = 2**256 - 1
# Sponsor policies of the reference servers (pympp, mpp-tools): stay inside them or the sponsor
# refuses to co-sign.
_SPONSOR_MAX_GAS = 2_000_000
# The default gas limit: a first transfer from a new account to a new holder measured ~300 000
# gas on anvil (T4), a plain one ~40 000, but servers check the limit against the node's gas
# estimate, and anvil estimates a Tempo transaction at ~0.5-0.8 M whatever its calls (a
# 500 000 limit is refused there).
_BASE_GAS = 750_000
_GAS_PER_TRANSFER = 250_000
#: Default ``max_fee_per_gas`` (atto-dollars per gas): room above the ~21 gwei a Tempo node
#: asks today for the base fee to rise before inclusion; with the default gas limit it bounds
#: one payment's network fee at 0.03 USD, which is what the budgets hold for it.
DEFAULT_MAX_FEE_PER_GAS = 30 * GWEI
_SPONSOR_MAX_FEE_PER_GAS = 100 * GWEI
# Gas prices are in attodollars (1e-18 USD) per gas unit, TIP-20 amounts in micro-dollars: one
# base unit of a fee token pays 10**12 attodollars.
_ATTO_PER_BASE_UNIT = 10 ** (18 - TIP20_DECIMALS)
# A live chain's latest block is at most about one block interval old: clocks closer than this
# (seconds) agree, and valid_before follows the local clock.
_SKEW_TOLERANCE = 3
# Seconds of chain time past valid_before before "no such transaction" is taken as proof that it
# can never be mined (a margin against a node that is a moment behind the block it reports).
_VOID_SLACK = 3
# The fee manager precompile: the network fee of a self-paid transaction is a TIP-20 Transfer
# to it, also in the receipt of a reverted transaction.
_FEE_MANAGER = "0xfeec000000000000000000000000000000000000"
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
#: Prefix of a sponsored payment's reference: the sender's signing hash, which the chain does not
#: index (the final transaction hash depends on the sponsor's signature).
SIGNING_HASH_PREFIX = "sender-signing-hash:"


class InvalidChargeRequest(PaymentRefused):
    """The challenge's charge request is malformed or asks for something this payer never
    signs (bad amount, recipient, memo or splits; unsupported mode). Nothing was signed."""


class NothingSigned(NothingSent, MethodError):
    """``pay`` failed before signing anything (the RPC endpoint failed or serves another chain,
    the gas price is above the cap): no transaction exists, so no value can move."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """One TIP-20 transfer of a charge: ``amount`` base units to ``recipient``."""

    recipient: str
    amount: int
    memo: bytes | None


@dataclass(frozen=True, slots=True)
class ChargePlan:
    """Everything ``pay`` needs, fixed by ``quote`` (no secrets)."""

    challenge_id: str
    realm: str
    chain_id: int
    rpc_url: str
    token: str
    transfers: tuple[Transfer, ...]
    total: int
    mode: Literal["pull", "push", "proof"]
    sponsored: bool
    #: Unix seconds (the challenge's ``expires``), or ``None``.
    expires_at: int | None
    gas_limit: int
    #: The most ``pay`` signs per gas unit (attodollars); the quoted fee bound is built on it.
    max_fee_per_gas: int


class TempoCharge(PaymentMethod):
    """Pays ``tempo``/``charge`` challenges from one ``Signer``'s account.

    Keyword options (amounts in base units of the token, 6 decimals; gas prices in attodollars
    per gas unit, shown as "gwei" by Ethereum tools):

    ``chain_id``: the chain id, or ids, this payer accepts (default 4217, mainnet). A challenge
    for another chain is refused, and so is a challenge without a chain id when several are
    allowed. ``rpc_url``: one RPC endpoint, or a mapping chain id -> endpoint; defaults to the
    public endpoint of known chains. ``tokens``: accepted TIP-20 tokens (addresses or
    ``TempoToken``); default: the known USD stablecoins of each chain. ``modes``: allowed modes
    in order of preference (default ``("pull",)``; add ``"push"`` to broadcast yourself when a
    challenge allows it). ``expiry_window``: seconds a signed transaction stays valid (default
    25; anvil and pre-T11 chains refuse more than 30). ``expiry_margin``: refuse challenges that
    expire within this many seconds (default 3). ``gas_limit``: fixed gas limit (default:
    750 000 + 250 000 per transfer; a first payment from a new account to a new holder needs
    ~300 000, and servers check the limit against the node's estimate, which anvil puts at
    ~0.5-0.8 M).
    ``max_fee_per_gas``: refuse to sign when the chain's gas price is above this (default
    30 gwei, atto-dollars per gas); never signs more than this per gas unit. Together they
    bound the network fee a payment can cost (0.03 USD at the defaults), which the budgets
    hold with the amount.
    ``fee_token``: token to pay network fees in when not sponsored (default: the charge
    token). ``client_id``: optional application id written into attribution memos.
    ``proof_realms``: realms for which zero-amount proofs may be signed besides the request's
    own host. ``gas_price_ttl``: seconds a fetched gas price is reused. ``chain_time_ttl``:
    seconds a measured difference between the chain's and the local clock is reused (keep it
    short: an idle dev chain falls one more second behind every second). ``timeout``: seconds
    one RPC call may take; ``receipt_timeout``: seconds a pushed transaction's receipt is
    polled for in all. ``clock``: the clock every cache and receipt poll is timed by
    (default: the system clock; see ``mpp_client.clock``).

    Exposure: when the payer pays the network fee, ``Quote.max_fee`` is the most it can cost,
    ``gas_limit * max_fee_per_gas`` rounded up to base units of the fee token, so with the charge
    token as fee token ``quote.exposure`` is the amount plus that fee (the actual fee is
    ``gas_used * base fee``, usually far less). Lower ``gas_limit`` and ``max_fee_per_gas`` to
    tighten it. Sponsored payments have no ``max_fee``.
    """

    name = "tempo"
    intents = frozenset({"charge"})

    def __init__(
        self,
        signer: Signer,
        *,
        chain_id: int | Collection[int] = 4217,
        rpc_url: str | Mapping[int, str] | None = None,
        tokens: Iterable[str | TempoToken] | None = None,
        modes: Sequence[Mode] = ("pull",),
        expiry_window: float = 25.0,
        expiry_margin: float = 3.0,
        gas_limit: int | None = None,
        max_fee_per_gas: int = DEFAULT_MAX_FEE_PER_GAS,
        fee_token: str | None = None,
        client_id: str | None = None,
        proof_realms: Iterable[str] = (),
        gas_price_ttl: float = 30.0,
        chain_time_ttl: float = 5.0,
        timeout: float = 10.0,
        receipt_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        require_extra("tempo", "TempoCharge")
        self.signer = signer
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self.chain_ids: frozenset[int] = frozenset(
            [chain_id] if isinstance(chain_id, int) else chain_id
        )
        if not self.chain_ids:
            raise ValueError("chain_id: allow at least one chain")
        if isinstance(rpc_url, str):
            if len(self.chain_ids) != 1:
                raise ValueError("rpc_url: give a mapping chain id -> URL for several chains")
            urls = {next(iter(self.chain_ids)): rpc_url}
        else:
            urls = {**DEFAULT_RPC_URLS, **(rpc_url or {})}
        self.rpc_urls: dict[int, str] = {c: urls[c] for c in self.chain_ids if c in urls}
        missing = self.chain_ids - self.rpc_urls.keys()
        if missing:
            raise ValueError(f"rpc_url: no RPC endpoint known for chain(s) {sorted(missing)}")
        self._tokens = self._token_table(tokens)
        if not modes or any(mode not in ("pull", "push") for mode in modes):
            raise ValueError("modes: a non-empty sequence of 'pull' and 'push'")
        self.modes: tuple[Mode, ...] = tuple(modes)
        if not 1 <= expiry_window <= 3600:
            raise ValueError("expiry_window: 1 to 3600 seconds")
        self.expiry_window = expiry_window
        self.expiry_margin = expiry_margin
        if gas_limit is not None and gas_limit < 21_000:
            raise ValueError("gas_limit: at least 21000")
        self.gas_limit = gas_limit
        self.max_fee_per_gas = max_fee_per_gas
        self.fee_token = fee_token.lower() if fee_token else None
        if self.fee_token is not None and not is_address(self.fee_token):
            raise ValueError("fee_token: not an address")
        self.client_id = client_id
        self.proof_realms = frozenset(proof_realms)
        self.gas_price_ttl = gas_price_ttl
        self.chain_time_ttl = chain_time_ttl
        self.timeout = timeout
        self.receipt_timeout = receipt_timeout
        # Per-endpoint caches and the in-flight hash registry, shared by every thread and
        # event loop that pays through this object.
        self._lock = threading.Lock()
        self._chain_of: dict[str, int] = {}
        self._gas_price: dict[str, tuple[int, float]] = {}
        self._chain_offset: dict[str, tuple[int, float]] = {}
        # Signing hash -> valid_before of every transaction signed in the last minute or so,
        # and the same entries as a min-heap on valid_before, so dropping the expired ones
        # costs O(log n) per payment instead of a scan of the whole registry.
        self._issued: dict[bytes, int] = {}
        self._expiring: list[tuple[int, bytes]] = []
        # (chain id, gas limit, token, fee token or None when sponsored, sponsored) ->
        # (template, token address bytes).
        self._templates: dict[
            tuple[int, int, str, str | None, bool], tuple[TransactionTemplate, bytes]
        ] = {}
        self._currencies: dict[tuple[int, str], Currency] = {}

    config_summary = "TIP-20 stablecoins on Tempo (a secp256k1 key)"

    @classmethod
    def config_secrets(cls, settings: Mapping[str, object]) -> tuple[SecretField, ...]:
        """One secret, ``private-key`` (hex), read at the first signature."""
        from mpp_client.methods.config import SecretField
        from mpp_client.wallet.keystore import SecretKind

        kind = SecretKind.TEMPO_PRIVATE_KEY
        return (SecretField("private-key", "Tempo private key (hex)", kind),)

    @classmethod
    def from_config(cls, settings: Mapping[str, object], secrets: SecretLoader) -> TempoCharge:
        """From settings ``address`` (required: the paying account, so no key is read to
        know it), ``root_account`` (for an access key), ``chain_id`` (default 4217),
        ``rpc_url``, ``tokens``, ``modes`` and ``fee_token``, as in the constructor."""
        from mpp_client.methods.config import MethodConfigError, Settings
        from mpp_client.methods.tempo.keystore_signer import KeyStoreSigner

        read = Settings(settings)
        address = read.required_text("address", "the account address")
        chain_id = read.integer("chain_id", 4217)
        # Not `or 4217`: chain_id = 0 must never become mainnet.
        if chain_id is None or chain_id <= 0:
            raise MethodConfigError("chain_id must be a positive integer")
        signer = KeyStoreSigner(
            lambda: secrets("private-key"), address, root_account=read.text("root_account")
        )
        modes = read.texts("modes") or ["pull"]
        try:
            return cls(
                signer,
                chain_id=chain_id,
                rpc_url=read.text("rpc_url"),
                tokens=read.texts("tokens"),
                modes=modes,  # type: ignore[arg-type]  # checked by the constructor
                fee_token=read.text("fee_token"),
            )
        except MethodConfigError:
            raise
        except ValueError as exc:  # the constructor's messages name the option, never a key
            raise MethodConfigError(str(exc)) from None

    def config_companions(self, settings: Mapping[str, object]) -> list[PaymentMethod]:
        """The ``TempoSession`` a configured wallet opts into with ``session_max_deposit``
        (base units of the session's token), sharing this method's signer (one key store read)
        and chain, RPC and token settings; ``session_max_prepaid_units`` and
        ``session_escrows`` (escrow addresses allowed on this chain besides the canonical
        ones) as in ``TempoSession``. No setting, no session method."""
        from mpp_client.methods.config import MethodConfigError, Settings
        from mpp_client.methods.tempo.session import TempoSession

        read = Settings(settings)
        max_deposit = read.integer("session_max_deposit")
        if max_deposit is None:
            return []
        if read.text("root_account"):
            # Vouchers are EIP-712 messages the escrow checks against the payer itself.
            raise MethodConfigError(
                "session_max_deposit: sessions need the account's own key, not an access key"
            )
        chain_id = read.integer("chain_id", 4217) or 4217
        try:
            return [
                TempoSession(
                    self.signer,
                    max_deposit=max_deposit,
                    max_prepaid_units=read.integer("session_max_prepaid_units", 1) or 1,
                    escrows={chain_id: read.texts("session_escrows") or []},
                    chain_id=chain_id,
                    rpc_url=read.text("rpc_url"),
                    tokens=read.texts("tokens"),
                    clock=self.clock,
                )
            ]
        except ValueError as exc:  # the constructor's messages name the option, never a key
            raise MethodConfigError(str(exc)) from None

    def _token_table(
        self, tokens: Iterable[str | TempoToken] | None
    ) -> dict[int, dict[str, TempoToken]]:
        table: dict[int, dict[str, TempoToken]] = {}
        for chain in self.chain_ids:
            if tokens is None:
                chosen: Iterable[TempoToken] = KNOWN_TOKENS.get(chain, ())
            else:
                chosen = [self._as_token(token) for token in tokens]
            table[chain] = {token.address: token for token in chosen}
        return table

    @staticmethod
    def _as_token(token: str | TempoToken) -> TempoToken:
        if isinstance(token, TempoToken):
            found = token
        else:
            if not is_address(token):
                raise ValueError(f"tokens: not an address: {token!r}")
            known = {t.address: t for group in KNOWN_TOKENS.values() for t in group}
            found = known.get(token.lower(), TempoToken(token, token.lower()[:10]))
        if found.decimals != 6:
            raise ValueError("tokens: TIP-20 tokens have 6 decimals")
        return found

    # --- quote -------------------------------------------------------------------------------

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check ``challenge`` and price it (no I/O). Raises ``PaymentRefused`` subclasses:
        ``NotAllowed`` (chain or token), ``ChallengeExpired``, ``InvalidChargeRequest``.

        ``max_fee`` is the worst-case network fee (base units of the fee token) when the payer
        pays it: ``gas_limit * max_fee_per_gas``, rounded up; ``pay`` never signs more."""
        request = _request_of(challenge)

        def refuse(reason: str) -> InvalidChargeRequest:
            return InvalidChargeRequest(f"tempo charge: {reason}", challenge=challenge)

        details = request.get("methodDetails", {})
        if details is None:
            details = {}
        if not isinstance(details, Mapping):
            raise refuse("methodDetails is not an object")

        chain_id = self._chain_for(details.get("chainId"), challenge)
        token = self._token_for(chain_id, request.get("currency"), challenge)
        total = _amount(request.get("amount"), "amount", refuse)
        recipient = request.get("recipient")
        if total > 0:
            _check_recipient(recipient, "recipient", refuse)

        expires = _expires_of(challenge)
        now = context.now.timestamp()
        if expires is not None and expires.timestamp() - now < self.expiry_margin:
            raise ChallengeExpired(
                f"tempo charge: the challenge expires at {expires.isoformat()}, too soon to pay",
                challenge=challenge,
            )

        sponsored = details.get("feePayer", False)
        if not isinstance(sponsored, bool):
            raise refuse("methodDetails.feePayer is not a boolean")
        transfers = self._transfers(challenge, request, details, total, refuse)
        mode = "proof" if total == 0 else self._mode_for(details, sponsored, refuse)
        if mode == "proof":
            self._check_proof_realm(challenge, context, refuse)

        currency = self._currency(chain_id, token.address)
        plan_sponsored = sponsored and mode == "pull"
        gas_limit = self.gas_limit or _BASE_GAS + _GAS_PER_TRANSFER * len(transfers)
        fee_cap = self.max_fee_per_gas
        if plan_sponsored:
            gas_limit = min(gas_limit, _SPONSOR_MAX_GAS)
            fee_cap = min(fee_cap, _SPONSOR_MAX_FEE_PER_GAS)
        max_fee: Money | None = None
        if mode != "proof" and not plan_sponsored:
            # The worst case the signed transaction allows; the chain rounds the fee up to
            # whole base units, so do we.
            fee_units = -(-gas_limit * fee_cap // _ATTO_PER_BASE_UNIT)
            max_fee = Money(fee_units, self._currency(chain_id, self.fee_token or token.address))
        plan = ChargePlan(
            challenge_id=challenge.id,
            realm=challenge.realm,
            chain_id=chain_id,
            rpc_url=self.rpc_urls[chain_id],
            token=token.address,
            transfers=transfers,
            total=total,
            mode=mode,
            sponsored=plan_sponsored,
            expires_at=math.floor(expires.timestamp()) if expires is not None else None,
            gas_limit=gas_limit,
            max_fee_per_gas=fee_cap,
        )
        return Quote(
            challenge=challenge,
            method=self.name,
            intent="charge",
            amount=Money(total, currency),
            payees=tuple(Payee(t.recipient, t.amount) for t in transfers),
            expires=expires,
            network=currency.network,
            max_fee=max_fee,
            details={"plan": plan, "mode": mode, "sponsored": plan.sponsored},
        )

    def _currency(self, chain_id: int, address: str) -> Currency:
        """The ``Currency`` of TIP-20 token ``address`` on ``chain_id`` (base units, 6
        decimals); the same object identity for the charge and for the fee, so that
        ``Quote.exposure`` adds them when they are one token."""
        # Cached: the addresses come from this payer's own token table and fee token, so the
        # cache is bounded by its configuration; a Currency is immutable.
        currency = self._currencies.get((chain_id, address))
        if currency is not None:
            return currency
        known = self._tokens[chain_id].get(address) or next(
            (t for t in KNOWN_TOKENS.get(chain_id, ()) if t.address == address), None
        )
        currency = Currency(
            address,
            TIP20_DECIMALS,
            network=f"eip155:{chain_id}",
            symbol=known.symbol if known else address[:10],
            # Tempo only takes fees in USD stablecoins.
            usd_pegged=known.usd_pegged if known else True,
        )
        with self._lock:
            return self._currencies.setdefault((chain_id, address), currency)

    def payer(self, network: str | None) -> str | None:
        """``"tempo:eip155:<chain id>:<address, lower case>"`` for a network this method pays
        on (``network`` as in ``Quote.network``, e.g. ``"eip155:42431"``); ``None`` for any
        other, because this method's lookups never ask that chain and so prove nothing about
        it. With an access key the address is the root account's."""
        if network is None or not network.startswith("eip155:"):
            return None
        try:
            chain_id = int(network.removeprefix("eip155:"))
        except ValueError:
            return None
        if chain_id not in self.chain_ids:
            return None
        return f"tempo:eip155:{chain_id}:{self.signer.address.lower()}"

    def _chain_for(self, raw: object, challenge: Challenge) -> int:
        if raw is None:
            if len(self.chain_ids) == 1:
                return next(iter(self.chain_ids))
            raise NotAllowed(
                "tempo charge: the challenge names no chainId and several chains are allowed",
                rule="tempo.chain",
                challenge=challenge,
            )
        if isinstance(raw, bool) or not isinstance(raw, int) or raw not in self.chain_ids:
            raise NotAllowed(
                f"tempo charge: chain {raw!r} is not one this payer pays on "
                f"({', '.join(map(str, sorted(self.chain_ids)))})",
                rule="tempo.chain",
                challenge=challenge,
            )
        return raw

    def _token_for(self, chain_id: int, raw: object, challenge: Challenge) -> TempoToken:
        token = self._tokens[chain_id].get(raw.lower()) if isinstance(raw, str) else None
        if token is None or not is_address(raw):
            raise NotAllowed(
                f"tempo charge: token {str(raw)[:64]!r} is not an allowed TIP-20 token on chain "
                f"{chain_id}",
                rule="tempo.token",
                challenge=challenge,
            )
        return token

    def _transfers(
        self,
        challenge: Challenge,
        request: Mapping[str, Any],
        details: Mapping[str, Any],
        total: int,
        refuse: Any,
    ) -> tuple[Transfer, ...]:
        if total == 0:
            return ()
        memo_hex = details.get("memo")
        if memo_hex is not None:
            if not isinstance(memo_hex, str) or not _MEMO.match(memo_hex):
                raise refuse("methodDetails.memo is not 32 bytes of hex")
            memo = bytes.fromhex(memo_hex[2:])
        else:
            memo = attribution_memo(challenge.realm, challenge.id, self.client_id)
        splits = details.get("splits")
        legs: list[Transfer] = []
        if splits is not None:
            if not isinstance(splits, list) or not splits:
                raise refuse("methodDetails.splits must be a non-empty list")
            if len(splits) > MAX_SPLITS:
                raise refuse(f"{len(splits)} splits; at most {MAX_SPLITS} are paid")
            for index, split in enumerate(splits):
                where = f"splits[{index}]"
                if not isinstance(split, Mapping):
                    raise refuse(f"{where} is not an object")
                amount = _amount(split.get("amount"), f"{where}.amount", refuse)
                if amount == 0:
                    raise refuse(f"{where}.amount must be greater than zero")
                _check_recipient(split.get("recipient"), f"{where}.recipient", refuse)
                split_memo = split.get("memo")
                if split_memo is not None and (
                    not isinstance(split_memo, str) or not _MEMO.match(split_memo)
                ):
                    raise refuse(f"{where}.memo is not 32 bytes of hex")
                legs.append(
                    Transfer(
                        split["recipient"].lower(),
                        amount,
                        bytes.fromhex(split_memo[2:]) if split_memo else None,
                    )
                )
            split_total = sum(leg.amount for leg in legs)
            if split_total >= total:
                raise refuse(f"splits add up to {split_total}, not less than the amount {total}")
        primary = Transfer(
            str(request["recipient"]).lower(), total - sum(leg.amount for leg in legs), memo
        )
        return (primary, *legs)

    def _mode_for(self, details: Mapping[str, Any], sponsored: bool, refuse: Any) -> Mode:
        supported = details.get("supportedModes", ["pull", "push"])
        if not isinstance(supported, list) or not all(m in ("pull", "push") for m in supported):
            raise refuse("methodDetails.supportedModes must list 'pull' and/or 'push'")
        if sponsored:
            # The sponsor co-signs what we hand over; pushing it ourselves would pay the fee.
            if "pull" not in supported:
                raise refuse("a sponsored charge must allow pull mode")
            return "pull"
        for mode in self.modes:
            if mode in supported:
                return mode
        raise refuse(
            f"the challenge allows {supported or 'no mode'}, this payer uses {list(self.modes)}"
        )

    def _check_proof_realm(
        self, challenge: Challenge, context: PaymentContext, refuse: Any
    ) -> None:
        # A proof signed for realm X while talking to another host would let that host present
        # our identity to X: only sign for the host we are talking to (or an allowed realm).
        host = urlsplit(context.origin).hostname or ""
        realm = challenge.realm
        if realm not in self.proof_realms and realm.split(":")[0] != host:
            raise refuse(
                f"a zero-amount proof for realm {realm!r} was asked by {host!r}; "
                "allow it with proof_realms"
            )
        if not hasattr(self.signer, "sign_raw_hash"):
            raise refuse("this signer cannot sign zero-amount proofs")

    # --- pay ---------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Sign (and in push mode broadcast) the payment planned by ``quote``.

        Raises ``NothingSigned`` for every failure before the signature; in push mode
        ``NothingSent`` when the transaction provably never reached the chain or expired
        unmined, ``MethodError`` (``money_moved=True``) when it reverted, and
        ``PaymentOutcomeUnknown`` when neither could be established in ``receipt_timeout``.
        """
        plan: ChargePlan = quote.details["plan"]
        source = f"did:pkh:eip155:{plan.chain_id}:{self.signer.address}"
        if plan.mode == "proof":
            digest = proof_digest(plan.chain_id, self.signer.address, plan.challenge_id, plan.realm)
            signature = self.signer.sign_raw_hash(digest)
            return PaymentProof(
                payload={"type": "proof", "signature": "0x" + signature.hex()},
                source=source,
                reference=plan.challenge_id,
            )

        url = plan.rpc_url
        clock_now = self.clock.time()
        cached_price = self._gas_price.get(url)
        cached_offset = self._chain_offset.get(url)
        if (
            self._chain_of.get(url) == plan.chain_id
            and cached_price is not None
            and 0 <= clock_now - cached_price[1] < self.gas_price_ttl
            and cached_offset is not None
            and 0 <= clock_now - cached_offset[1] < self.chain_time_ttl
        ):
            # Every answer is cached and fresh (the usual case after the first payment): the
            # same checks as below without starting three generators.
            gas_price, offset = cached_price[0], cached_offset[0]
        else:
            try:
                yield from self._check_endpoint_chain(plan)
                gas_price = yield from self._current_gas_price(url)
                offset = yield from self._chain_time_offset(url)
            except (RpcError, EffectFailed) as error:
                raise NothingSigned(f"tempo: {error.reason}; nothing was signed") from error
        cap = plan.max_fee_per_gas
        if gas_price > cap:
            raise NothingSigned(
                f"tempo: gas price {gas_price} is above the allowed {cap}; nothing was signed"
            )
        # Room for the base fee to rise before inclusion, never above what the quote priced.
        max_fee = min(2 * gas_price, cap)
        template, token = self._template_for(plan)
        prefix = template.prefix(
            max_fee,
            [
                template.call(token, transfer_data(t.recipient, t.amount, t.memo))
                for t in plan.transfers
            ],
        )

        # valid_before is judged against block timestamps: count it from the chain's time.
        now = int(context.now.timestamp()) + offset
        latest = now + int(self.expiry_window)
        if plan.expires_at is not None:
            latest = min(latest, plan.expires_at)
        valid_before, body, digest = self._unique_transaction(now, latest, template, prefix, quote)
        signature = self.signer.sign_hash(digest)
        sender = address_bytes(self.signer.address) if plan.sponsored else b""
        raw = template.envelope(prefix, body, valid_before, sender, signature)
        if plan.sponsored:
            # The final hash depends on the sponsor's signature; until the receipt names it,
            # the sender's signing hash identifies this payment. The prefix keeps lookup from
            # reading "no transaction with this hash" as "never mined".
            reference = SIGNING_HASH_PREFIX + "0x" + digest.hex()
        else:
            reference = tx_hash(raw)
        void_after = datetime.fromtimestamp(valid_before, UTC)
        yield Checkpoint("signed", reference, void_after=void_after)

        if plan.mode == "pull":
            return PaymentProof(
                payload={"type": "transaction", "signature": "0x" + raw.hex()},
                source=source,
                reference=reference,
            )
        yield from self._broadcast(raw, reference, valid_before, offset, plan)
        return PaymentProof(
            payload={"type": "hash", "hash": reference},
            source=source,
            reference=reference,
            money_moved=True,
        )

    def _check_endpoint_chain(self, plan: ChargePlan) -> Generator[Effect, Any, None]:
        chain = self._chain_of.get(plan.rpc_url)
        if chain is None:
            raw = yield from rpc_call(plan.rpc_url, "eth_chainId", [], timeout=self.timeout)
            chain = int(raw, 16)
            with self._lock:
                self._chain_of[plan.rpc_url] = chain
        if chain != plan.chain_id:
            raise NothingSigned(
                f"tempo: the RPC endpoint serves chain {chain}, the challenge is for chain "
                f"{plan.chain_id}; nothing was signed"
            )

    def _current_gas_price(self, url: str) -> Generator[Effect, Any, int]:
        cached = self._gas_price.get(url)
        now = self.clock.time()
        if cached is not None and 0 <= now - cached[1] < self.gas_price_ttl:
            return cached[0]
        price = int((yield from rpc_call(url, "eth_gasPrice", [], timeout=self.timeout)), 16)
        with self._lock:
            self._gas_price[url] = (price, now)
        return price

    def _chain_time_offset(self, url: str) -> Generator[Effect, Any, int]:
        """Whole seconds to add to the local clock to get the chain's time at ``url``: ``0``
        when they agree within ``_SKEW_TOLERANCE``, else latest block timestamp - local time.

        Measured at most every ``chain_time_ttl`` seconds. On an idle chain the true offset
        shrinks by one second per second, so a cached value errs towards a later
        ``valid_before`` by at most the TTL (5 s by default: 25 s + 5 s stays in anvil's 30 s).
        """
        cached = self._chain_offset.get(url)
        now = self.clock.time()
        if cached is not None and 0 <= now - cached[1] < self.chain_time_ttl:
            return cached[0]
        chain_time = yield from self._latest_block_time(url)
        skew = chain_time - now
        offset = 0 if abs(skew) <= _SKEW_TOLERANCE else math.floor(skew)
        with self._lock:
            self._chain_offset[url] = (offset, now)
        return offset

    def _latest_block_time(self, url: str) -> Generator[Effect, Any, int]:
        """The latest block's timestamp at ``url`` (Unix seconds, the chain's clock)."""
        block = yield from rpc_call(
            url, "eth_getBlockByNumber", ["latest", False], timeout=self.timeout
        )
        if not isinstance(block, dict) or not isinstance(block.get("timestamp"), str):
            raise RpcError("eth_getBlockByNumber: the answer has no block timestamp")
        try:
            return int(block["timestamp"], 16)
        except ValueError:
            raise RpcError("eth_getBlockByNumber: the block timestamp is not hex") from None

    def _template_for(self, plan: ChargePlan) -> tuple[TransactionTemplate, bytes]:
        """The encoded constant fields of ``plan``'s transactions, built once per shape, and
        the token's 20 address bytes (every call's ``to``).

        Keyed by every field the template fixes; the keys come from this payer's own
        configuration (allowed chains and tokens, fee token, gas limits), so the cache stays
        small whatever challenges arrive."""
        fee_token = None if plan.sponsored else (self.fee_token or plan.token)
        key = (plan.chain_id, plan.gas_limit, plan.token, fee_token, plan.sponsored)
        cached = self._templates.get(key)
        if cached is None:
            template = TransactionTemplate(
                chain_id=plan.chain_id,
                gas_limit=plan.gas_limit,
                max_priority_fee_per_gas=0,
                nonce_key=EXPIRING_NONCE_KEY,
                nonce=0,
                fee_token=address_bytes(fee_token) if fee_token is not None else None,
                sponsored=plan.sponsored,
            )
            cached = (template, address_bytes(plan.token))
            with self._lock:
                self._templates[key] = cached
        return cached

    def _unique_transaction(
        self, now: int, latest: int, template: TransactionTemplate, prefix: bytes, quote: Quote
    ) -> tuple[int, bytes, bytes]:
        """The latest ``valid_before`` whose signing hash is not in flight already, with the
        signing body and hash of the transaction ``prefix`` closed by it.

        ``now`` and ``latest`` are Unix seconds on the chain's clock."""
        floor = now + 2
        if latest < floor:
            raise ChallengeExpired(
                "tempo charge: the challenge expires before a transaction could be mined",
                challenge=quote.challenge,
            )
        with self._lock:
            # A minute of margin: the measured chain-clock offset may change between payments,
            # and keeping an entry too long only costs a second of window on a collision.
            horizon = now - 60
            expiring = self._expiring
            issued = self._issued
            while expiring and expiring[0][0] < horizon:
                _, stale = heapq.heappop(expiring)
                # A hash is only ever inserted once (never while present), so the heap entry
                # and the registry entry always agree.
                del issued[stale]
            for valid_before in range(latest, floor - 1, -1):
                body = template.signing_body(prefix, valid_before)
                digest = template.signing_hash(body)
                if digest not in issued:
                    issued[digest] = valid_before
                    heapq.heappush(expiring, (valid_before, digest))
                    return valid_before, body, digest
        raise NothingSigned(
            "tempo: too many identical payments in flight from this account; nothing was signed"
        )

    def _broadcast(
        self, raw: bytes, reference: str, valid_before: int, offset: int, plan: ChargePlan
    ) -> Generator[Effect, Any, None]:
        """Send ``raw`` and wait for a successful receipt (push mode).

        ``valid_before`` is chain time; ``offset`` is chain time minus local time."""
        void_after = datetime.fromtimestamp(valid_before, UTC)
        yield Checkpoint("broadcast", reference, void_after=void_after)
        raw_hex = "0x" + raw.hex()
        receipt: Any = None
        try:
            receipt = yield from rpc_call(
                plan.rpc_url,
                "eth_sendRawTransactionSync",
                [raw_hex],
                timeout=self.receipt_timeout,
                retry_safe=False,
            )
        except RpcError as error:
            # Not a proof: a gateway's 502, the node's own timeout, even "insufficient funds"
            # from one node behind a load balancer may hide a transaction another one took.
            # Only the chain can tell, by valid_before at the latest; the poll below asks it.
            if error.method_not_found:
                yield from self._send_without_sync(raw_hex, reference, plan)
        except EffectFailed as failed:
            if not failed.delivered:
                raise NothingSent(
                    f"tempo: transaction {reference} never reached the node ({failed.reason})",
                    challenge_id=plan.challenge_id,
                    reference=reference,
                ) from failed
        if not isinstance(receipt, dict):
            receipt = yield from self._wait_for_receipt(reference, valid_before, offset, plan)
        if receipt.get("status") != "0x1":
            # The calls are atomic, so none of the charge moved, but the network fee was paid:
            # value did leave the account, and the hold must not be released as "nothing".
            raise MethodError(
                f"tempo: transaction {reference} reverted on chain; the transfer did not "
                "happen, the network fee was paid",
                money_moved=True,
                challenge_id=plan.challenge_id,
                reference=reference,
            )

    def _send_without_sync(
        self, raw_hex: str, reference: str, plan: ChargePlan
    ) -> Generator[Effect, Any, None]:
        """``eth_sendRawTransaction`` for nodes without the sync variant (which answered
        "method not found", so it took nothing)."""
        try:
            yield from rpc_call(
                plan.rpc_url,
                "eth_sendRawTransaction",
                [raw_hex],
                timeout=self.timeout,
                retry_safe=False,
            )
        except RpcError:
            pass  # may still have been accepted: the caller polls
        except EffectFailed as failed:
            if not failed.delivered:
                raise NothingSent(
                    f"tempo: transaction {reference} never reached the node ({failed.reason})",
                    challenge_id=plan.challenge_id,
                    reference=reference,
                ) from failed

    def _wait_for_receipt(
        self, reference: str, valid_before: int, offset: int, plan: ChargePlan
    ) -> Generator[Effect, Any, dict[str, Any]]:
        """Poll until a receipt, a proof that the transaction expired unmined (``NothingSent``)
        or ``receipt_timeout`` seconds (``PaymentOutcomeUnknown``)."""
        start = self.clock.time()
        deadline = start + self.receipt_timeout
        # The local instant at which the chain should be past valid_before + slack.
        void_at = valid_before - offset + _VOID_SLACK
        delay = 0.05
        slept = 0.0
        while True:
            receipt = yield from self._receipt(plan.rpc_url, reference)
            if receipt is not None:
                return receipt
            # At least the time we slept has passed, even on a clock that stands still.
            now = max(self.clock.time(), start + slept)
            if now >= void_at:
                void, receipt = yield from self._void_check(plan.rpc_url, reference, valid_before)
                if receipt is not None:
                    return receipt
                if void:
                    raise NothingSent(
                        f"tempo: transaction {reference} expired without being mined (the "
                        f"chain is past its valid_before {valid_before}); no value moved",
                        challenge_id=plan.challenge_id,
                        reference=reference,
                    )
            if now >= deadline:
                raise PaymentOutcomeUnknown(
                    f"tempo: no receipt for {reference} yet, and it may still be mined until "
                    f"its valid_before {valid_before}",
                    challenge_id=plan.challenge_id,
                    reference=reference,
                )
            yield Sleep(delay)
            slept += delay
            delay = min(delay * 2, 1.0)

    def _receipt(self, url: str, reference: str) -> Generator[Effect, Any, dict[str, Any] | None]:
        """The receipt of ``reference`` at ``url``, or ``None`` (not mined, or no answer)."""
        try:
            receipt = yield from rpc_call(
                url, "eth_getTransactionReceipt", [reference], timeout=self.timeout
            )
        except (RpcError, EffectFailed):
            return None
        return receipt if isinstance(receipt, dict) else None

    def _void_check(
        self, url: str, reference: str, valid_before: int
    ) -> Generator[Effect, Any, tuple[bool, dict[str, Any] | None]]:
        """Whether transaction ``reference`` can provably never be mined on the chain at
        ``url``, and its receipt if it was mined after all.

        Proof: a block at least ``_VOID_SLACK`` seconds past ``valid_before`` exists (an
        expiring-nonce transaction is only valid in blocks with a timestamp below its
        ``valid_before``, and block timestamps only grow), and after reading that block the
        node has neither a receipt nor the transaction. The block is read first, so a
        transaction mined in any block up to it would have been found. Any RPC failure is no
        proof.
        """
        try:
            chain_time = yield from self._latest_block_time(url)
        except (RpcError, EffectFailed):
            return False, None
        if chain_time < valid_before + _VOID_SLACK:
            return False, None
        try:
            receipt = yield from rpc_call(
                url, "eth_getTransactionReceipt", [reference], timeout=self.timeout
            )
            if isinstance(receipt, dict):
                return False, receipt
            if receipt is not None:
                return False, None
            known = yield from rpc_call(
                url, "eth_getTransactionByHash", [reference], timeout=self.timeout
            )
        except (RpcError, EffectFailed):
            return False, None
        return known is None, None

    # --- abandon -----------------------------------------------------------------------------

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, bool]:
        """A rejected pull credential is a signed transaction the server still holds: it can
        settle until its ``valid_before``. ``True`` only when the chain is already past it and
        the transaction was never mined (rare: the window is 25 s); else ``False``."""
        plan = quote.details.get("plan")
        reference = proof.reference
        if not isinstance(plan, ChargePlan) or plan.mode != "pull" or plan.sponsored:
            return False
        if reference is None or not _HASH.match(reference):
            return False
        valid_before = _valid_before_of(proof)
        if valid_before is None:
            return False
        void, _ = yield from self._void_check(plan.rpc_url, reference, valid_before)
        return void

    # --- lookup ------------------------------------------------------------------------------

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """Ask the chain what became of transaction ``reference`` (a ``0x`` tx hash).

        ``settled``: mined with status 1. ``failed``: reverted (the transfers did not happen;
        the fee was paid), or ``void_after`` (the transaction's ``valid_before``) is given and
        every configured chain is ``_VOID_SLACK`` seconds past it without knowing the
        transaction. Anything else, including RPC failures and sponsored references (the
        sender's signing hash, which no chain indexes), is ``pending``.
        """
        if reference.startswith(SIGNING_HASH_PREFIX):
            return LookupResult(
                "pending",
                reference,
                detail="a sponsored payment is named by the sender's signing hash; the chain "
                "only knows the sponsor-signed transaction hash (the server's receipt "
                "reference), so this reference can neither be found nor proven void",
            )
        if not _HASH.match(reference):
            return LookupResult("pending", reference, detail="not a transaction hash")
        unreachable: list[str] = []
        for url in self.rpc_urls.values():
            try:
                receipt = yield from rpc_call(
                    url, "eth_getTransactionReceipt", [reference], timeout=self.timeout
                )
            except (RpcError, EffectFailed) as error:
                unreachable.append(f"{_host(url)}: {error.reason}")
                continue
            if isinstance(receipt, dict):
                return _receipt_result(reference, receipt)
        if unreachable:
            return LookupResult(
                "pending", reference, detail="could not ask " + "; ".join(unreachable)
            )
        if void_after is None:
            return LookupResult("pending", reference, detail="no receipt on the configured chains")
        valid_before = math.floor(void_after.timestamp())
        for url in self.rpc_urls.values():
            void, receipt = yield from self._void_check(url, reference, valid_before)
            if receipt is not None:
                return _receipt_result(reference, receipt)
            if not void:
                return LookupResult(
                    "pending",
                    reference,
                    detail=f"not mined yet; it can be until its valid_before {valid_before} "
                    f"(the chain at {_host(url)} is not past it yet)",
                )
        return LookupResult(
            "failed",
            reference,
            detail=f"expired, never mined: every configured chain is past its valid_before "
            f"{valid_before} and none has the transaction",
        )

    def __repr__(self) -> str:
        return (
            f"TempoCharge(address={self.signer.address}, chains={sorted(self.chain_ids)}, "
            f"modes={list(self.modes)})"
        )


# --- helpers -----------------------------------------------------------------------------------


def _receipt_result(reference: str, receipt: Mapping[str, Any]) -> LookupResult:
    """What a receipt proves: status 1 settled; a revert that moved nothing but the network
    fee failed; anything else (an unknown status, a revert with other token movements) is
    left for a human."""
    block = receipt.get("blockNumber")
    if receipt.get("status") == "0x1":
        return LookupResult("settled", reference, detail=f"mined in block {block}")
    if receipt.get("status") == "0x0" and all(
        _is_fee_log(log) for log in receipt.get("logs") or ()
    ):
        return LookupResult(
            "failed",
            reference,
            detail=f"reverted in block {block}: the transfer did not happen (the network fee "
            "was paid)",
        )
    return LookupResult(
        "pending", reference, detail=f"receipt in block {block} with an unexpected outcome"
    )


def _is_fee_log(log: Any) -> bool:
    """Whether a receipt log is the network fee's Transfer to the fee manager."""
    if not isinstance(log, Mapping):
        return False
    topics = log.get("topics") or []
    return (
        len(topics) == 3
        and str(topics[0]).lower() == TRANSFER_TOPIC
        and str(topics[2]).lower()[-40:] == _FEE_MANAGER[2:]
    )


def _valid_before_of(proof: PaymentProof) -> int | None:
    """The ``valid_before`` of the signed ``0x76`` in a pull credential, or ``None``."""
    signature = proof.payload.get("signature")
    if not isinstance(signature, str) or not signature.startswith("0x76"):
        return None
    try:
        fields = rlp.decode(bytes.fromhex(signature[4:]))
    except ValueError:
        return None
    if not isinstance(fields, list) or len(fields) < 9 or not isinstance(fields[8], bytes):
        return None
    return int.from_bytes(fields[8], "big") or None


def _host(url: str) -> str:
    """The host of an RPC URL (never its path or query, which may hold an API key)."""
    return urlsplit(url).hostname or "the RPC endpoint"


def _request_of(challenge: Challenge) -> Mapping[str, Any]:
    """The decoded charge request of ``challenge``."""
    request: Any = challenge.request_data
    if not isinstance(request, Mapping):
        raise InvalidChargeRequest(
            "tempo charge: the challenge request is not a JSON object", challenge=challenge
        )
    return request


# Cached: a server stamps many challenges with the same expiry second; a datetime is immutable
# and the cache is bounded.
@lru_cache(maxsize=64)
def _parse_expiry(text: str) -> datetime:
    return parse_timestamp(text)


def _expires_of(challenge: Challenge) -> datetime | None:
    if challenge.expires is None:
        return None
    try:
        return _parse_expiry(challenge.expires)
    except ValueError:  # ParseError: the parser already refuses malformed timestamps
        raise InvalidChargeRequest(
            "tempo charge: expires is not an RFC 3339 timestamp", challenge=challenge
        ) from None


def _amount(raw: object, where: str, refuse: Any) -> int:
    if not isinstance(raw, str) or not _AMOUNT.match(raw):
        raise refuse(f"{where} must be a string of base-unit digits, got {str(raw)[:40]!r}")
    value = int(raw)
    if value > _MAX_UINT256:
        raise refuse(f"{where} is larger than a uint256")
    return value


def _check_recipient(raw: object, where: str, refuse: Any) -> None:
    if not is_address(raw):
        raise refuse(f"{where} is not a valid address: {str(raw)[:64]!r}")
    if str(raw).lower() == _ZERO_ADDRESS:
        raise refuse(f"{where} is the zero address (the money would be burnt)")
