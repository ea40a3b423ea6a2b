"""tempo/charge: every check before signing, and exactly what pay() signs and sends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from mpp_client.effects import Checkpoint, HttpCall
from mpp_client.errors import (
    ChallengeExpired,
    EffectFailed,
    MethodError,
    NotAllowed,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.methods.base import Payee
from mpp_client.methods.tempo import (
    SIGNING_HASH_PREFIX,
    InvalidChargeRequest,
    LocalKeySigner,
    NothingSigned,
    TempoCharge,
    rlp,
)
from mpp_client.methods.tempo.keccak import keccak256
from mpp_client.methods.tempo.memo import attribution_memo
from mpp_client.methods.tempo.proof import proof_digest
from mpp_client.methods.tempo.signer import recover_address
from mpp_client.methods.tempo.transaction import EXPIRING_NONCE_KEY
from mpp_client.testing import ManualClock

from .challenges import MERCHANT, NOW, PARTNER, PATH_USD, charge_request, context, make_challenge
from .driver import FakeRpc, RpcFault, drive

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SIGNER = LocalKeySigner(KEY)
RPC = "http://127.0.0.1:9/rpc"


def method(**options) -> TempoCharge:
    # Every time the method compares comes from the pinned clock, never from today's date.
    options.setdefault("clock", ManualClock(NOW))
    options.setdefault("chain_id", 42431)
    options.setdefault("rpc_url", RPC)
    return TempoCharge(SIGNER, **options)


def decode_tx(raw_hex: str) -> dict:
    raw = bytes.fromhex(raw_hex[2:])
    fields = rlp.decode(raw[1:])
    head = {
        "type": raw[0],
        "chain_id": int.from_bytes(fields[0], "big"),
        "max_priority_fee": int.from_bytes(fields[1], "big"),
        "max_fee": int.from_bytes(fields[2], "big"),
        "gas": int.from_bytes(fields[3], "big"),
        "calls": [(c[0], int.from_bytes(c[1], "big"), c[2]) for c in fields[4]],
        "access_list": fields[5],
        "nonce_key": int.from_bytes(fields[6], "big"),
        "nonce": int.from_bytes(fields[7], "big"),
        "valid_before": int.from_bytes(fields[8], "big"),
        "valid_after": int.from_bytes(fields[9], "big"),
        "fee_token": fields[10],
        "raw": raw,
        "fields": fields,
    }
    if raw[0] == 0x76:
        head["fee_payer_signature"] = fields[11]
        head["signature"] = fields[-1]
    else:
        head["sender"] = fields[11]
        head["signature"] = fields[-1]
    return head


def transfer_args(data: bytes) -> tuple[bytes, str, int, bytes | None]:
    selector = data[:4]
    to = "0x" + data[16:36].hex()
    amount = int.from_bytes(data[36:68], "big")
    memo = data[68:100] if len(data) > 68 else None
    return selector, to, amount, memo


def pay(m: TempoCharge, challenge, rpc, ctx=None):
    """Quote and pay at the method's clock; a Sleep advances that clock."""
    ctx = ctx or context(now=datetime.fromtimestamp(m.clock.time(), UTC))
    quote = m.quote(challenge, ctx)
    return drive(m.pay(quote, ctx), rpc, m.clock)


def void_after(valid_before: int) -> datetime:
    return datetime.fromtimestamp(valid_before, UTC)


# --- quote: what would be paid --------------------------------------------------------------


def test_quote_prices_the_charge_in_pathusd_base_units():
    quote = method().quote(make_challenge(), context())
    assert quote.amount.amount == 1_000_000
    assert quote.amount.currency.code == PATH_USD
    assert quote.amount.currency.decimals == 6
    assert quote.amount.currency.network == "eip155:42431"
    assert quote.amount.currency.usd_pegged and quote.amount.currency.symbol == "pathUSD"
    assert quote.payees == (Payee(MERCHANT.lower(), 1_000_000),)
    assert quote.network == "eip155:42431"
    assert quote.expires == NOW + timedelta(minutes=5)
    assert quote.details["mode"] == "pull" and quote.details["sponsored"] is False


def test_quote_lists_the_primary_payee_and_every_split():
    request = charge_request(
        "1000000",
        splits=[{"amount": "200000", "recipient": PARTNER}, {"amount": "1", "recipient": PARTNER}],
    )
    quote = method().quote(make_challenge(request), context())
    assert quote.payees == (
        Payee(MERCHANT.lower(), 799_999),
        Payee(PARTNER.lower(), 200_000),
        Payee(PARTNER.lower(), 1),
    )
    assert sum(p.amount for p in quote.payees) == quote.amount.amount


def test_challenge_without_chain_id_uses_the_single_pinned_chain():
    quote = method().quote(make_challenge(charge_request(chain_id=None)), context())
    assert quote.network == "eip155:42431"


@pytest.mark.parametrize("chain", [4217, 1, "42431", True])
def test_a_chain_that_is_not_pinned_is_refused(chain):
    with pytest.raises(NotAllowed, match="chain") as caught:
        method().quote(make_challenge(charge_request(chain_id=chain)), context())
    assert caught.value.rule == "tempo.chain"


def test_several_allowed_chains_need_the_challenge_to_name_one():
    m = TempoCharge(SIGNER, chain_id=[42431, 31337], rpc_url={42431: RPC, 31337: RPC})
    assert m.quote(make_challenge(charge_request(chain_id=31337)), context()).network == (
        "eip155:31337"
    )
    with pytest.raises(NotAllowed):
        m.quote(make_challenge(charge_request(chain_id=None)), context())


@pytest.mark.parametrize(
    "token",
    [
        "0x20c0000000000000000000000000000000000099",  # unknown TIP-20
        "0x20C000000000000000000000b9537d11c60E8b50",  # mainnet USDC, not on the testnet
        "pathUSD",
        None,
    ],
)
def test_a_token_that_is_not_allowed_is_refused(token):
    with pytest.raises(NotAllowed, match="token"):
        method().quote(make_challenge(charge_request(currency=token)), context())


def test_a_token_allowlist_replaces_the_defaults():
    m = method(tokens=["0x20c0000000000000000000000000000000000001"])
    with pytest.raises(NotAllowed):
        m.quote(make_challenge(), context())
    alpha = charge_request(currency="0x20C0000000000000000000000000000000000001")
    assert m.quote(make_challenge(alpha), context()).amount.currency.symbol == "AlphaUSD"


@pytest.mark.parametrize("amount", ["1.5", "-1", "01", "", " 1", "1e6", "0x10", 1000000, None])
def test_a_malformed_amount_is_refused(amount):
    with pytest.raises(InvalidChargeRequest, match="amount"):
        method().quote(make_challenge(charge_request(amount)), context())


@pytest.mark.parametrize(
    "recipient",
    [
        "0x0000000000000000000000000000000000000000",
        "0x742d35cc6634c0532925a3b844bc9e7595f8fe0",  # 19 bytes
        "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",  # bad EIP-55 checksum
        "merchant",
        None,
    ],
)
def test_an_invalid_recipient_is_refused(recipient):
    with pytest.raises(InvalidChargeRequest, match="recipient"):
        method().quote(make_challenge(charge_request(recipient=recipient)), context())


@pytest.mark.parametrize(
    ("splits", "reason"),
    [
        ([], "non-empty"),
        ({"amount": "1", "recipient": PARTNER}, "non-empty"),
        ([{"amount": "0", "recipient": PARTNER}], "greater than zero"),
        ([{"amount": "1000000", "recipient": PARTNER}], "not less than"),
        ([{"amount": "600000", "recipient": PARTNER}] * 2, "not less than"),
        ([{"amount": "1", "recipient": PARTNER}] * 11, "at most 10"),
        ([{"amount": "1", "recipient": "0x1234"}], "recipient"),
        ([{"amount": "1.0", "recipient": PARTNER}], "amount"),
        ([{"amount": "1", "recipient": PARTNER, "memo": "0x12"}], "memo"),
        (["x"], "not an object"),
    ],
)
def test_invalid_splits_are_refused(splits, reason):
    with pytest.raises(InvalidChargeRequest, match=reason):
        method().quote(make_challenge(charge_request(splits=splits)), context())


def test_ten_splits_are_paid():
    splits = [{"amount": "1", "recipient": PARTNER}] * 10
    quote = method().quote(make_challenge(charge_request(splits=splits)), context())
    assert len(quote.payees) == 11


def test_an_expired_or_nearly_expired_challenge_is_refused():
    for expires in (NOW - timedelta(seconds=1), NOW + timedelta(seconds=2)):
        with pytest.raises(ChallengeExpired):
            method().quote(make_challenge(expires=expires), context())


def test_a_malformed_memo_is_refused():
    with pytest.raises(InvalidChargeRequest, match="memo"):
        method().quote(make_challenge(charge_request(memo="0x1234")), context())


def test_push_only_challenges_are_refused_unless_push_is_allowed():
    push_only = make_challenge(charge_request(supportedModes=["push"]))
    with pytest.raises(InvalidChargeRequest, match="push"):
        method().quote(push_only, context())
    assert method(modes=("pull", "push")).quote(push_only, context()).details["mode"] == "push"


def test_sponsored_challenges_are_always_pulled():
    sponsored = make_challenge(charge_request(feePayer=True))
    quote = method(modes=("push", "pull")).quote(sponsored, context())
    assert quote.details == {**quote.details, "mode": "pull", "sponsored": True}
    with pytest.raises(InvalidChargeRequest, match="sponsored"):
        method().quote(
            make_challenge(charge_request(feePayer=True, supportedModes=["push"])), context()
        )
    with pytest.raises(InvalidChargeRequest, match="feePayer"):
        method().quote(make_challenge(charge_request(feePayer="yes")), context())


def test_refusals_are_payment_refused_and_carry_the_challenge():
    challenge = make_challenge(charge_request(amount="abc"))
    with pytest.raises(PaymentRefused) as caught:
        method().quote(challenge, context())
    assert caught.value.challenge is challenge
    assert caught.value.money_moved is False


# --- pay: pull -------------------------------------------------------------------------------


def test_pull_payment_signs_one_transfer_with_memo_on_the_expiring_nonce_lane():
    rpc = FakeRpc.chain(gas_price=20 * 10**9)
    proof, trace = pay(method(), make_challenge(), rpc)
    assert rpc.methods() == ["eth_chainId", "eth_gasPrice", "eth_getBlockByNumber"]
    assert proof.payload["type"] == "transaction"
    assert proof.source == f"did:pkh:eip155:42431:{SIGNER.address}"
    assert proof.money_moved is False
    tx = decode_tx(proof.payload["signature"])
    assert tx["type"] == 0x76 and tx["chain_id"] == 42431
    assert tx["nonce_key"] == EXPIRING_NONCE_KEY and tx["nonce"] == 0
    assert tx["valid_before"] == int(NOW.timestamp()) + 25
    assert tx["fee_token"] == bytes.fromhex(PATH_USD[2:])
    # Twice the gas price leaves room for the base fee to rise, capped at the 30 gwei default.
    assert tx["max_fee"] == 30 * 10**9 and tx["max_priority_fee"] == 0
    assert tx["access_list"] == []
    [(to, value, data)] = tx["calls"]
    assert to == bytes.fromhex(PATH_USD[2:]) and value == 0
    selector, recipient, amount, memo = transfer_args(data)
    assert selector == bytes.fromhex("95777d59")
    assert (recipient, amount) == (MERCHANT.lower(), 1_000_000)
    assert memo == attribution_memo("api.example.com", "challenge-123")
    # what the checkpoint names is the hash of exactly the bytes in the credential
    assert trace.checkpoints == [
        Checkpoint("signed", "0x" + keccak256(tx["raw"]).hex(), void_after(tx["valid_before"]))
    ]
    assert proof.reference == trace.checkpoints[0].reference
    # and the signature recovers to our account
    unsigned = bytes([0x76]) + rlp.encode(tx["fields"][:-1])
    assert recover_address(keccak256(unsigned), tx["signature"]) == SIGNER.address


def test_one_payer_keeps_each_transaction_shape_apart():
    # pay() reuses the encoded constant fields per (chain, gas limit, token, fee token,
    # sponsored): payments that differ in any of them must never share them.
    alpha = "0x20c0000000000000000000000000000000000001"
    m = method()
    rpc = FakeRpc.chain()
    cases = [
        (charge_request(), PATH_USD, False),
        (charge_request(currency=alpha), alpha, False),
        (charge_request(currency=alpha, feePayer=True), alpha, True),
        (charge_request(feePayer=True), PATH_USD, True),
        (charge_request(splits=[{"amount": "10", "recipient": PARTNER}]), PATH_USD, False),
        (charge_request(), PATH_USD, False),
    ]
    for index, (request, token, sponsored) in enumerate(cases):
        proof, _ = pay(m, make_challenge(request, id=f"shape-{index}"), rpc)
        tx = decode_tx(proof.payload["signature"])
        assert tx["type"] == (0x78 if sponsored else 0x76)
        assert {to for to, _, _ in tx["calls"]} == {bytes.fromhex(token[2:])}
        assert tx["fee_token"] == (b"" if sponsored else bytes.fromhex(token[2:]))
        assert tx["gas"] == 750_000 + 250_000 * len(tx["calls"])
        memo = transfer_args(tx["calls"][0][2])[3]
        assert memo == attribution_memo("api.example.com", f"shape-{index}")


def test_valid_before_never_passes_the_challenge_expiry():
    challenge = make_challenge(expires=NOW + timedelta(seconds=10))
    proof, _ = pay(method(), challenge, FakeRpc.chain())
    assert decode_tx(proof.payload["signature"])["valid_before"] == int(NOW.timestamp()) + 10


def test_the_expiry_window_is_configurable():
    proof, _ = pay(method(expiry_window=7), make_challenge(), FakeRpc.chain())
    assert decode_tx(proof.payload["signature"])["valid_before"] == int(NOW.timestamp()) + 7


def test_the_server_memo_is_used_for_the_primary_transfer_when_given():
    memo = "0x" + "ab" * 32
    proof, _ = pay(method(), make_challenge(charge_request(memo=memo)), FakeRpc.chain())
    [(_, _, data)] = decode_tx(proof.payload["signature"])["calls"]
    assert transfer_args(data)[3] == bytes.fromhex("ab" * 32)


def test_splits_become_one_transfer_call_each():
    split_memo = "0x" + "cd" * 32
    request = charge_request(
        "1000000",
        splits=[
            {"amount": "250000", "recipient": PARTNER, "memo": split_memo},
            {"amount": "50000", "recipient": MERCHANT},
        ],
    )
    proof, _ = pay(method(), make_challenge(request), FakeRpc.chain())
    calls = [transfer_args(data) for _, _, data in decode_tx(proof.payload["signature"])["calls"]]
    memo = attribution_memo("api.example.com", "challenge-123")
    assert calls == [
        (bytes.fromhex("95777d59"), MERCHANT.lower(), 700_000, memo),
        (bytes.fromhex("95777d59"), PARTNER.lower(), 250_000, bytes.fromhex("cd" * 32)),
        (bytes.fromhex("a9059cbb"), MERCHANT.lower(), 50_000, None),
    ]


def test_chain_id_gas_price_and_chain_time_are_cached_so_the_hot_path_needs_no_rpc():
    m, rpc = method(), FakeRpc.chain()
    pay(m, make_challenge(id="one"), rpc)
    pay(m, make_challenge(id="two"), rpc)
    m.clock.advance(4.9)  # within chain_time_ttl (5 s) and gas_price_ttl (30 s)
    pay(m, make_challenge(id="three"), rpc)
    assert rpc.methods() == ["eth_chainId", "eth_gasPrice", "eth_getBlockByNumber"]
    m.clock.advance(0.2)
    pay(m, make_challenge(id="four"), rpc)
    assert rpc.methods()[3:] == ["eth_getBlockByNumber"]
    m.clock.advance(30)
    pay(m, make_challenge(id="five"), rpc)
    assert rpc.methods()[4:] == ["eth_gasPrice", "eth_getBlockByNumber"]


def test_an_rpc_on_another_chain_is_refused_before_signing():
    rpc = FakeRpc.chain(chain_id=4217)
    with pytest.raises(NothingSigned, match="chain 4217") as caught:
        pay(method(), make_challenge(), rpc)
    assert isinstance(caught.value, NothingSent) and isinstance(caught.value, MethodError)
    assert caught.value.money_moved is False


def test_a_gas_price_above_the_cap_is_refused_before_signing():
    rpc = FakeRpc.chain(gas_price=200 * 10**9)
    m = method()
    quote = m.quote(make_challenge(), context())
    gen = m.pay(quote, context())
    effects = []
    with pytest.raises(NothingSigned, match="gas price") as caught:
        effect = next(gen)
        while True:
            effects.append(effect)
            effect = gen.send(rpc(effect))
    assert not any(isinstance(e, Checkpoint) for e in effects)
    assert caught.value.money_moved is False


@pytest.mark.parametrize("failing", ["eth_chainId", "eth_gasPrice", "eth_getBlockByNumber"])
def test_rpc_errors_before_signing_prove_nothing_was_sent(failing):
    rpc = FakeRpc.chain()
    rpc.handlers[failing] = lambda p: (_ for _ in ()).throw(RpcFault(-32000, "down"))
    with pytest.raises(NothingSigned, match="down") as caught:
        pay(method(), make_challenge(), rpc)
    assert isinstance(caught.value, MethodError) and caught.value.money_moved is False


def test_an_unreachable_rpc_before_signing_proves_nothing_was_sent():
    def unreachable(call):
        raise EffectFailed("connect refused", delivered=True)

    with pytest.raises(NothingSigned) as caught:
        pay(method(), make_challenge(), unreachable)
    assert caught.value.money_moved is False


# --- pay: sponsored ----------------------------------------------------------------------------


def test_sponsored_payment_hands_over_a_0x78_envelope_without_fee_token():
    proof, trace = pay(method(), make_challenge(charge_request(feePayer=True)), FakeRpc.chain())
    envelope = decode_tx(proof.payload["signature"])
    assert envelope["type"] == 0x78
    assert envelope["fee_token"] == b""
    assert envelope["sender"] == bytes.fromhex(SIGNER.address[2:])
    assert envelope["gas"] <= 2_000_000 and envelope["max_fee"] <= 100 * 10**9
    assert envelope["access_list"] == []
    # The sender signed the sponsored form: fee token empty, fee payer slot 0x00.
    fields = envelope["fields"]
    sponsored_form = [*fields[:10], b"", b"\x00", fields[12]]
    digest = keccak256(b"\x76" + rlp.encode(sponsored_form))
    assert recover_address(digest, envelope["signature"]) == SIGNER.address
    # The reference is the signing hash, marked so lookups never take it for a tx hash.
    reference = SIGNING_HASH_PREFIX + "0x" + digest.hex()
    assert proof.reference == reference
    assert trace.checkpoints == [
        Checkpoint("signed", reference, void_after(envelope["valid_before"]))
    ]


# --- pay: push ---------------------------------------------------------------------------------

RECEIPT_OK = {"status": "0x1", "blockNumber": "0x5", "transactionHash": None}


def test_push_broadcasts_after_checkpoints_and_sends_the_hash():
    rpc = FakeRpc.chain()
    sent = []

    def send_sync(params):
        sent.append(params[0])
        return {
            **RECEIPT_OK,
            "transactionHash": "0x" + keccak256(bytes.fromhex(params[0][2:])).hex(),
        }

    rpc.handlers["eth_sendRawTransactionSync"] = send_sync
    m = method(modes=("push",))
    proof, trace = pay(m, make_challenge(), rpc)
    reference = "0x" + keccak256(bytes.fromhex(sent[0][2:])).hex()
    assert proof.payload == {"type": "hash", "hash": reference}
    assert proof.money_moved is True
    expiry = void_after(decode_tx(sent[0])["valid_before"])
    assert trace.checkpoints == [
        Checkpoint("signed", reference, expiry),
        Checkpoint("broadcast", reference, expiry),
    ]
    broadcast_at = trace.effects.index(Checkpoint("broadcast", reference, expiry))
    send_at = next(
        i for i, e in enumerate(trace.effects) if isinstance(e, HttpCall) and b"Sync" in e.content
    )
    assert broadcast_at < send_at


def test_push_falls_back_to_send_and_poll_when_sync_send_is_missing():
    rpc = FakeRpc.chain()
    polls = []
    rpc.handlers["eth_sendRawTransaction"] = lambda p: (
        "0x" + keccak256(bytes.fromhex(p[0][2:])).hex()
    )

    def receipt(params):
        polls.append(params[0])
        return RECEIPT_OK if len(polls) >= 3 else None

    rpc.handlers["eth_getTransactionReceipt"] = receipt
    proof, trace = pay(method(modes=("push",)), make_challenge(), rpc)
    assert rpc.methods()[3:] == [
        "eth_sendRawTransactionSync",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
        "eth_getTransactionReceipt",
        "eth_getTransactionReceipt",
    ]
    assert len(trace.sleeps) == 2
    assert proof.payload["type"] == "hash" and set(polls) == {proof.reference}


def test_push_that_reverts_is_a_failure_naming_the_transaction_and_its_fee():
    rpc = FakeRpc.chain()
    rpc.handlers["eth_sendRawTransactionSync"] = lambda p: {**RECEIPT_OK, "status": "0x0"}
    with pytest.raises(MethodError, match=r"reverted.*fee was paid") as caught:
        pay(method(modes=("push",)), make_challenge(), rpc)
    assert caught.value.reference is not None
    # The transfer did not happen but the network fee left the account: not "nothing moved".
    assert caught.value.money_moved is True and not isinstance(caught.value, NothingSent)


def test_push_whose_send_may_have_arrived_polls_for_the_receipt():
    rpc = FakeRpc.chain()
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: RECEIPT_OK

    def flaky(call: HttpCall):
        if b"eth_sendRawTransactionSync" in call.content:
            raise EffectFailed("read timeout", delivered=True)
        return rpc(call)

    m = method(modes=("push",))
    quote = m.quote(make_challenge(), context())
    proof, _ = drive(m.pay(quote, context()), flaky)
    assert proof.money_moved and rpc.methods()[-1] == "eth_getTransactionReceipt"


def test_push_with_no_receipt_before_the_deadline_is_an_unknown_outcome():
    rpc = FakeRpc.chain()
    rpc.handlers["eth_sendRawTransactionSync"] = lambda p: None
    rpc.handlers["eth_getTransactionReceipt"] = lambda p: None
    m = method(modes=("push",), receipt_timeout=0)
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(m, make_challenge(), rpc)
    assert caught.value.challenge_id == "challenge-123" and caught.value.reference


# --- concurrency -------------------------------------------------------------------------------


def test_identical_payments_in_flight_never_share_a_transaction_hash():
    """A server-fixed memo makes two challenges' calls identical: valid_before must differ."""
    m = method()
    memo = "0x" + "ee" * 32
    rpc = FakeRpc.chain()
    pay(m, make_challenge(charge_request(memo=memo), id="warm"), rpc)  # fill the caches
    references: list[str] = []
    valid_befores: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        proof, _ = pay(m, make_challenge(charge_request(memo=memo), id=f"c{i}"), rpc)
        with lock:
            references.append(proof.reference)
            valid_befores.append(decode_tx(proof.payload["signature"])["valid_before"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(references)) == 12
    assert len(set(valid_befores)) == 12
    assert max(valid_befores) <= int(NOW.timestamp()) + 25


def test_distinct_challenges_differ_by_memo_and_keep_the_full_window():
    m, rpc = method(), FakeRpc.chain()
    a, _ = pay(m, make_challenge(id="a"), rpc)
    b, _ = pay(m, make_challenge(id="b"), rpc)
    assert a.reference != b.reference
    assert (
        decode_tx(a.payload["signature"])["valid_before"]
        == decode_tx(b.payload["signature"])["valid_before"]
    )


# --- zero amount: proof ------------------------------------------------------------------------


def test_zero_amount_is_paid_with_an_eip712_v3_proof_and_no_rpc():
    rpc = FakeRpc.chain()
    proof, trace = pay(method(), make_challenge(charge_request("0")), rpc)
    assert rpc.calls == [] and trace.checkpoints == []
    assert proof.payload["type"] == "proof"
    digest = proof_digest(42431, SIGNER.address, "challenge-123", "api.example.com")
    assert recover_address(digest, bytes.fromhex(proof.payload["signature"][2:])) == SIGNER.address
    assert proof.source == f"did:pkh:eip155:42431:{SIGNER.address}"
    assert proof.money_moved is False


def test_zero_amount_proof_for_another_realm_is_refused():
    challenge = make_challenge(charge_request("0"), realm="bank.example")
    with pytest.raises(InvalidChargeRequest, match="realm"):
        method().quote(challenge, context())
    assert method(proof_realms=["bank.example"]).quote(challenge, context()).amount.amount == 0


# --- lookup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("receipt", "status"),
    [
        ({"status": "0x1", "blockNumber": "0x9"}, "settled"),
        ({"status": "0x0"}, "failed"),
        (None, "pending"),
    ],
)
def test_lookup_reads_the_receipt(receipt, status):
    rpc = FakeRpc({"eth_getTransactionReceipt": lambda p: receipt})
    result, _ = drive(method().lookup("0x" + "12" * 32), rpc)  # no void_after: never "failed"
    assert result.status == status and result.reference == "0x" + "12" * 32
    assert rpc.calls == [("eth_getTransactionReceipt", ["0x" + "12" * 32])]


def test_lookup_of_something_that_is_not_a_hash_asks_nothing():
    rpc = FakeRpc()
    result, _ = drive(method().lookup("not-a-hash"), rpc)
    assert result.status == "pending" and rpc.calls == []


def test_reprs_hide_the_signed_transaction_and_key():
    proof, _ = pay(method(), make_challenge(), FakeRpc.chain())
    text = repr(proof) + repr(method())
    assert proof.payload["signature"][2:40] not in text
    assert KEY[2:] not in text
