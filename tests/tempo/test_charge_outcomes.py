"""tempo/charge: chain time, worst-case fees, and what each outcome proves about the money.

Every test runs on a pinned ManualClock (NOW = 2026-11-22) and a FakeRpc whose latest block is
stamped by a test-controlled function: nothing depends on today's date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mpp_client.effects import Checkpoint, HttpCall, HttpReply
from mpp_client.errors import (
    ChallengeExpired,
    EffectFailed,
    MethodError,
    NothingSent,
    PaymentOutcomeUnknown,
)
from mpp_client.methods.base import PaymentProof
from mpp_client.methods.tempo import (
    ALPHA_USD,
    SIGNING_HASH_PREFIX,
    AccessKeySigner,
    RpcError,
    TempoCharge,
)
from mpp_client.money import Money
from mpp_client.testing import ManualClock

from .challenges import NOW, charge_request, context, make_challenge
from .driver import FakeRpc, RpcFault, drive
from .test_charge import KEY, RPC, SIGNER, decode_tx, method, pay

T0 = int(NOW.timestamp())
TX = "0x" + "ab" * 32
FEE_MANAGER_TOPIC = "0x" + "00" * 12 + "feec000000000000000000000000000000000000"
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def chain_following(clock: ManualClock, offset: float = 0.0) -> FakeRpc:
    """A live chain: its latest block is ``offset`` seconds from the local clock."""
    return FakeRpc.chain(block_time=lambda: clock.time() + offset)


def valid_before_of(proof: PaymentProof) -> int:
    return decode_tx(proof.payload["signature"])["valid_before"]


# --- 2. valid_before follows the chain's clock --------------------------------------------------


@pytest.mark.parametrize("skew", [-3, -1, 0, 2, 3])
def test_valid_before_follows_the_local_clock_when_the_chain_agrees(skew):
    m = method()
    proof, _ = pay(m, make_challenge(), chain_following(m.clock, skew))
    assert valid_before_of(proof) == T0 + 25


@pytest.mark.parametrize("lag", [4, 20, 90, 600])
def test_valid_before_follows_a_chain_that_lags(lag):
    """An idle anvil's latest block is minutes old; servers simulate at that block and anvil
    refuses an expiring nonce more than 30 s past it."""
    m = method()
    proof, trace = pay(m, make_challenge(), chain_following(m.clock, -lag))
    assert valid_before_of(proof) == T0 - lag + 25
    [signed] = trace.checkpoints
    assert signed.void_after == at(T0 - lag + 25)  # chain time, as lookup compares it


def test_valid_before_follows_a_chain_that_leads_but_never_passes_the_expiry():
    m = method()
    proof, _ = pay(m, make_challenge(), chain_following(m.clock, 10))
    assert valid_before_of(proof) == T0 + 10 + 25
    near = make_challenge(expires=NOW + timedelta(seconds=20))
    proof, _ = pay(method(), near, chain_following(m.clock, 10))
    assert valid_before_of(proof) == T0 + 20


def test_a_chain_already_past_the_challenge_expiry_is_refused_before_signing():
    m = method()
    rpc = chain_following(m.clock, 30)
    ctx = context()
    quote = m.quote(make_challenge(expires=NOW + timedelta(seconds=20)), ctx)
    with pytest.raises(ChallengeExpired):
        drive(m.pay(quote, ctx), rpc, m.clock)
    assert "eth_sendRawTransactionSync" not in rpc.methods()


def test_the_measured_skew_is_reused_only_briefly():
    """The chain stands still (idle anvil): after chain_time_ttl the lag is measured again."""
    m = method()
    rpc = FakeRpc.chain(block_time=T0 - 100)
    first, _ = pay(m, make_challenge(id="a"), rpc)
    m.clock.advance(4)
    second, _ = pay(m, make_challenge(id="b"), rpc)
    m.clock.advance(2)  # 6 s after the measurement: measured again
    third, _ = pay(m, make_challenge(id="c"), rpc)
    assert rpc.methods().count("eth_getBlockByNumber") == 2
    assert valid_before_of(first) == T0 - 100 + 25
    # a reused offset errs late by at most the TTL: still within anvil's 30 s of the block
    assert valid_before_of(second) == T0 - 100 + 25 + 4
    assert valid_before_of(third) == T0 - 100 + 25


def test_the_skew_is_cached_per_rpc_endpoint():
    clock = ManualClock(NOW)
    m = TempoCharge(
        SIGNER,
        chain_id=[42431, 31337],
        rpc_url={42431: RPC, 31337: "http://127.0.0.1:8/rpc"},
        clock=clock,
    )
    lagging = FakeRpc.chain(block_time=T0 - 60)
    local = FakeRpc.chain(chain_id=31337, block_time=T0)

    def route(call: HttpCall) -> HttpReply:
        return lagging(call) if call.url == RPC else local(call)

    a, _ = drive(m.pay(m.quote(make_challenge(), context()), context()), route)
    other = make_challenge(charge_request(chain_id=31337))
    b, _ = drive(m.pay(m.quote(other, context()), context()), route)
    assert (valid_before_of(a), valid_before_of(b)) == (T0 - 60 + 25, T0 + 25)


# --- 3. push: errors are not proofs -------------------------------------------------------------

RECEIPT_OK = {"status": "0x1", "blockNumber": "0x11", "logs": []}


def push_method(**options) -> TempoCharge:
    return method(modes=("push",), **options)


def refusing(code: int = -32003, message: str = "insufficient fee token balance"):
    def handler(params):
        raise RpcFault(code, message)

    return handler


def test_rpc_errors_no_longer_claim_that_nothing_moved():
    assert RpcError("boom").money_moved is None


def test_a_gateway_error_on_broadcast_polls_and_finds_the_payment():
    m = push_method()
    rpc = chain_following(m.clock)
    polls = []

    def receipt(params):
        polls.append(params[0])
        return RECEIPT_OK if len(polls) >= 2 else None

    rpc.handlers["eth_sendRawTransactionSync"] = refusing(-32000, "request timed out")
    rpc.handlers["eth_getTransactionReceipt"] = receipt
    proof, _ = pay(m, make_challenge(), rpc)
    assert proof.money_moved is True and proof.payload == {"type": "hash", "hash": polls[0]}


def test_an_http_502_on_broadcast_is_not_a_refusal():
    m = push_method()
    rpc = chain_following(m.clock)
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: RECEIPT_OK

    def gateway(call: HttpCall) -> HttpReply:
        if b"eth_sendRawTransactionSync" in call.content:
            return HttpReply(502, {}, b"<html>Bad Gateway</html>")
        return rpc(call)

    quote = m.quote(make_challenge(), context())
    proof, _ = drive(m.pay(quote, context()), gateway, m.clock)
    assert proof.money_moved is True


def test_a_refused_broadcast_that_expires_unmined_proves_nothing_moved():
    m = push_method()
    rpc = chain_following(m.clock)
    rpc.handlers["eth_sendRawTransactionSync"] = refusing()
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: None
    rpc.handlers["eth_getTransactionByHash"] = lambda p: None
    with pytest.raises(NothingSent, match="expired without being mined") as caught:
        pay(m, make_challenge(), rpc)
    assert caught.value.money_moved is False and caught.value.reference
    # the proof came from the chain's clock: a block past valid_before + 3 s, read before the
    # last receipt and transaction lookups
    tail = rpc.methods()[-3:]
    assert tail == ["eth_getBlockByNumber", "eth_getTransactionReceipt", "eth_getTransactionByHash"]
    assert m.clock.time() >= T0 + 25 + 3


def test_a_transaction_the_node_still_holds_is_not_proven_void():
    m = push_method()
    rpc = chain_following(m.clock)
    rpc.handlers["eth_sendRawTransactionSync"] = refusing(-32000, "timeout")
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: None
    rpc.handlers["eth_getTransactionByHash"] = lambda p: {"hash": p[0], "blockNumber": None}
    with pytest.raises(PaymentOutcomeUnknown):
        pay(m, make_challenge(), rpc)


def test_a_chain_that_does_not_advance_gives_no_proof():
    """An idle chain never shows a block past valid_before: the outcome stays unknown."""
    m = push_method()
    rpc = FakeRpc.chain(block_time=T0)
    rpc.handlers["eth_sendRawTransactionSync"] = refusing()
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: None
    rpc.handlers["eth_getTransactionByHash"] = lambda p: None
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(m, make_challenge(), rpc)
    assert caught.value.money_moved is None
    assert m.clock.time() >= T0 + 30  # polled for the whole receipt_timeout


def test_a_lagging_chain_is_judged_by_its_own_clock():
    """valid_before is chain time: the local clock being past it proves nothing."""
    m = push_method()
    rpc = chain_following(m.clock, -100)
    rpc.handlers["eth_sendRawTransactionSync"] = refusing()
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: None
    rpc.handlers["eth_getTransactionByHash"] = lambda p: None
    with pytest.raises(NothingSent):
        pay(m, make_challenge(), rpc)
    assert m.clock.time() - 100 >= T0 - 100 + 25 + 3


def test_a_broadcast_that_never_reached_the_node_proves_nothing_moved():
    m = push_method()
    rpc = chain_following(m.clock)

    def unreachable(call: HttpCall) -> HttpReply:
        if b"eth_sendRawTransaction" in call.content:
            raise EffectFailed("connection refused", delivered=False)
        return rpc(call)

    quote = m.quote(make_challenge(), context())
    with pytest.raises(NothingSent, match="never reached") as caught:
        drive(m.pay(quote, context()), unreachable, m.clock)
    assert caught.value.money_moved is False
    assert "eth_getTransactionReceipt" not in rpc.methods()


def test_a_fallback_broadcast_that_never_reached_the_node_proves_nothing_moved():
    m = push_method()
    rpc = chain_following(m.clock)  # no eth_sendRawTransactionSync: "method not found"

    def flaky(call: HttpCall) -> HttpReply:
        if b'"eth_sendRawTransaction"' in call.content:
            raise EffectFailed("connection refused", delivered=False)
        return rpc(call)

    quote = m.quote(make_challenge(), context())
    with pytest.raises(NothingSent):
        drive(m.pay(quote, context()), flaky, m.clock)


def test_a_fallback_broadcast_error_still_polls():
    m = push_method()
    rpc = chain_following(m.clock)
    rpc.handlers["eth_sendRawTransaction"] = refusing(-32000, "already known")
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: RECEIPT_OK
    proof, _ = pay(m, make_challenge(), rpc)
    assert proof.money_moved is True


def test_a_refused_broadcast_that_was_mined_and_reverted_paid_its_fee():
    m = push_method()
    rpc = chain_following(m.clock)
    rpc.handlers["eth_sendRawTransactionSync"] = refusing(-32000, "timeout")
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: {**RECEIPT_OK, "status": "0x0"}
    with pytest.raises(MethodError, match="reverted") as caught:
        pay(m, make_challenge(), rpc)
    assert caught.value.money_moved is True


def test_a_receipt_found_while_proving_void_wins():
    m = push_method()
    rpc = chain_following(m.clock)
    rpc.handlers["eth_sendRawTransactionSync"] = refusing()
    calls = []

    def receipt(params):
        calls.append(m.clock.time())
        # mined just before valid_before; the node indexes it late
        return RECEIPT_OK if m.clock.time() >= T0 + 28 and len(calls) % 2 == 0 else None

    rpc.handlers["eth_getTransactionReceipt"] = receipt
    rpc.handlers["eth_getTransactionByHash"] = lambda p: None
    proof, _ = pay(m, make_challenge(), rpc)
    assert proof.money_moved is True


# --- 4. exposure includes the worst-case fee ----------------------------------------------------


def test_the_worst_case_fee_is_part_of_the_exposure():
    quote = method().quote(make_challenge(), context())
    # 1_000_000 gas (750k + 250k per transfer) at the 30 gwei cap = 3e16 attodollars = 0.03
    assert quote.max_fee == Money(30_000, quote.amount.currency)
    assert quote.exposure == Money(1_030_000, quote.amount.currency)


def test_the_worst_case_fee_rounds_up_to_whole_base_units():
    quote = method(gas_limit=21_001, max_fee_per_gas=10**9 + 1).quote(make_challenge(), context())
    # 21_001 * 1_000_000_001 = 21_001_000_021_001 attodollars = 21.001000021001 base units
    assert quote.max_fee.amount == 22


def test_the_signed_transaction_never_allows_more_than_the_quoted_fee():
    m = method(gas_limit=300_000, max_fee_per_gas=30 * 10**9)
    quote = m.quote(make_challenge(), context())
    rpc = FakeRpc.chain(gas_price=25 * 10**9)  # 2x would be 50 gwei: capped at 30
    proof, _ = drive(m.pay(quote, context()), rpc, m.clock)
    tx = decode_tx(proof.payload["signature"])
    assert tx["gas"] == 300_000 and tx["max_fee"] == 30 * 10**9
    assert -(-tx["gas"] * tx["max_fee"] // 10**12) <= quote.max_fee.amount


def test_the_fee_in_another_token_is_reported_in_that_token():
    quote = method(fee_token=ALPHA_USD.address).quote(make_challenge(), context())
    assert quote.max_fee.currency.code == ALPHA_USD.address
    assert quote.max_fee.currency.network == "eip155:42431"
    assert quote.max_fee.currency.symbol == "AlphaUSD"
    assert quote.exposure == quote.amount  # another currency: the flow must count it itself


def test_sponsored_and_zero_amount_payments_have_no_fee():
    assert method().quote(make_challenge(charge_request(feePayer=True)), context()).max_fee is None
    assert method().quote(make_challenge(charge_request("0")), context()).max_fee is None


def test_the_fee_grows_with_the_splits():
    splits = [{"amount": "1", "recipient": "0xa1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"}] * 2
    quote = method().quote(make_challenge(charge_request(splits=splits)), context())
    assert quote.max_fee.amount == (750_000 + 3 * 250_000) * 30 * 10**9 // 10**12


# --- 6. lookup ----------------------------------------------------------------------------------


def lookup(m: TempoCharge, rpc, reference: str = TX, void_after: datetime | None = None):
    result, _ = drive(m.lookup(reference, void_after=void_after), rpc, m.clock)
    return result


def test_lookup_of_a_reverted_transaction_that_only_paid_its_fee_is_failed():
    fee_log = {"topics": [TRANSFER, "0x" + "00" * 12 + "11" * 20, FEE_MANAGER_TOPIC]}
    rpc = FakeRpc({"eth_getTransactionReceipt": lambda p: {"status": "0x0", "logs": [fee_log]}})
    result = lookup(method(), rpc)
    assert result.status == "failed"
    assert "did not happen" in result.detail and "fee" in result.detail


def test_lookup_of_a_reverted_transaction_with_other_transfers_is_not_trusted():
    other = {"topics": [TRANSFER, "0x" + "00" * 32, "0x" + "00" * 12 + "22" * 20]}
    rpc = FakeRpc({"eth_getTransactionReceipt": lambda p: {"status": "0x0", "logs": [other]}})
    assert lookup(method(), rpc).status == "pending"


def unmined_chain(block_time) -> FakeRpc:
    rpc = FakeRpc.chain(block_time=block_time)
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: None
    rpc.handlers["eth_getTransactionByHash"] = lambda p: None
    return rpc


def test_lookup_proves_an_expired_never_mined_transaction_failed():
    rpc = unmined_chain(T0 + 28)
    result = lookup(method(), rpc, void_after=at(T0 + 25))
    assert result.status == "failed" and "expired, never mined" in result.detail
    assert rpc.methods() == [
        "eth_getTransactionReceipt",
        "eth_getBlockByNumber",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
    ]


@pytest.mark.parametrize("chain_time", [T0 + 10, T0 + 25, T0 + 27])
def test_lookup_before_the_chain_passes_valid_before_and_slack_is_pending(chain_time):
    rpc = unmined_chain(chain_time)
    assert lookup(method(), rpc, void_after=at(T0 + 25)).status == "pending"


def test_lookup_judges_expiry_by_the_chain_not_the_local_clock():
    m = method()
    m.clock.advance(3600)  # the local clock is far past valid_before ...
    rpc = unmined_chain(T0 + 20)  # ... but the chain is not
    assert lookup(m, rpc, void_after=at(T0 + 25)).status == "pending"


def test_lookup_without_void_after_never_says_failed():
    assert lookup(method(), unmined_chain(T0 + 10_000)).status == "pending"


def test_lookup_of_a_transaction_still_in_the_pool_is_pending():
    rpc = unmined_chain(T0 + 100)
    rpc.handlers["eth_getTransactionByHash"] = lambda p: {"hash": TX, "blockNumber": None}
    assert lookup(method(), rpc, void_after=at(T0 + 25)).status == "pending"


def test_lookup_needs_every_configured_chain_past_valid_before():
    clock = ManualClock(NOW)
    m = TempoCharge(
        SIGNER,
        chain_id=[42431, 31337],
        rpc_url={42431: RPC, 31337: "http://127.0.0.1:8/rpc"},
        clock=clock,
    )
    past, behind = unmined_chain(T0 + 100), unmined_chain(T0 + 1)

    def route(call: HttpCall) -> HttpReply:
        return past(call) if call.url == RPC else behind(call)

    assert lookup(m, route, void_after=at(T0 + 25)).status == "pending"
    assert lookup(m, past, void_after=at(T0 + 25)).status == "failed"


def test_lookup_with_an_unreachable_chain_is_pending():
    def down(call: HttpCall) -> HttpReply:
        raise EffectFailed("connection refused", delivered=False)

    result = lookup(method(), down, void_after=at(T0 + 25))
    assert result.status == "pending" and "could not ask" in result.detail
    assert "rpc" not in result.detail  # the host only, never the URL path (API keys)


def test_lookup_finds_a_receipt_that_appears_during_the_void_check():
    rpc = unmined_chain(T0 + 100)
    answers = iter([None, RECEIPT_OK])
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: next(answers)
    assert lookup(method(), rpc, void_after=at(T0 + 25)).status == "settled"


def test_lookup_of_a_sponsored_reference_is_pending_and_asks_nothing():
    rpc = unmined_chain(T0 + 10_000)
    reference = SIGNING_HASH_PREFIX + TX
    result = lookup(method(), rpc, reference, void_after=at(T0 + 25))
    assert result.status == "pending" and "signing hash" in result.detail
    assert rpc.calls == []


# --- 7. payer -----------------------------------------------------------------------------------


def test_payer_names_the_account_on_the_network_the_quote_carries():
    m = method()
    quote = m.quote(make_challenge(), context())
    assert m.payer(quote.network) == f"tempo:eip155:42431:{SIGNER.address.lower()}"


@pytest.mark.parametrize("network", [None, "eip155:4217", "mainnet", "eip155:x"])
def test_payer_on_a_network_this_method_does_not_pay_on_is_none(network):
    assert method().payer(network) is None


def test_payer_of_an_access_key_is_its_root_account():
    root = "0x742d35Cc6634c0532925a3b844bC9e7595F8fE00"
    m = TempoCharge(AccessKeySigner(KEY, root), chain_id=42431, rpc_url=RPC)
    assert m.payer("eip155:42431") == f"tempo:eip155:42431:{root.lower()}"


# --- 5 and 8. checkpoints and abandon -----------------------------------------------------------


def test_every_signed_transaction_reports_when_it_becomes_void():
    for request in (charge_request(), charge_request(feePayer=True)):
        m = method()
        proof, trace = pay(m, make_challenge(request), FakeRpc.chain())
        [signed] = trace.checkpoints
        assert signed == Checkpoint("signed", proof.reference, at(T0 + 25))
        assert signed.void_after.tzinfo is UTC


def pulled(m: TempoCharge, request=None):
    quote = m.quote(make_challenge(request or charge_request()), context())
    proof, _ = drive(m.pay(quote, context()), FakeRpc.chain(), m.clock)
    return quote, proof


def test_abandon_before_valid_before_keeps_the_hold():
    m = method()
    quote, proof = pulled(m)
    rpc = unmined_chain(T0 + 5)
    assert drive(m.abandon(quote, proof), rpc)[0] is False


def test_abandon_after_the_chain_passed_valid_before_proves_the_credential_void():
    m = method()
    quote, proof = pulled(m)
    rpc = unmined_chain(T0 + 25 + 3)
    assert drive(m.abandon(quote, proof), rpc)[0] is True
    assert ["eth_getTransactionByHash", [proof.reference]] in [list(c) for c in rpc.calls]


def test_abandon_of_a_mined_credential_is_false():
    m = method()
    quote, proof = pulled(m)
    rpc = unmined_chain(T0 + 100)
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: RECEIPT_OK
    assert drive(m.abandon(quote, proof), rpc)[0] is False


def test_abandon_of_a_sponsored_credential_is_false_and_asks_nothing():
    m = method()
    quote, proof = pulled(m, charge_request(feePayer=True))
    rpc = unmined_chain(T0 + 100)
    assert drive(m.abandon(quote, proof), rpc)[0] is False and rpc.calls == []


# --- 1. one clock -------------------------------------------------------------------------------


def test_nothing_in_these_tests_reads_todays_date():
    """The tempo tests pin time; a stray wall-clock read would make them date-dependent."""
    from pathlib import Path

    here = Path(__file__).parent
    for path in [*here.glob("*.py")]:
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        for forbidden in ("time.time(", "datetime.now(", "datetime.utcnow(", "date.today("):
            assert forbidden not in text, f"{path.name} reads the wall clock ({forbidden})"
