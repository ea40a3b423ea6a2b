"""v2 sessions (the TIP-20 channel reserve precompile, TIP-1034) at the encoding level, judged by
mppx 0.11's own server-side verification run in node (tests/tempo/session/mppx_v2_verify.mjs):
channel ids from descriptors, open transactions (self-paid 0x76 and sponsored 0x78 hand-off,
their expiringNonceHash recomputed by mppx through ox), top-ups and vouchers. No local chain has
the precompile, so nothing here is broadcast, and TempoSession still refuses to pay v2."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mpp_client.clock import SYSTEM_CLOCK, utcnow
from mpp_client.errors import NotAllowed
from mpp_client.methods.base import PaymentContext
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.escrow import V2_PRECOMPILE
from mpp_client.methods.tempo.session import (
    TempoSession,
    build_v2_open,
    build_v2_top_up,
    v2_voucher_payload,
)
from mpp_client.methods.tempo.voucher import MAX_UINT96, channel_id_v2
from mpp_client.protocol import Challenge
from tests.peers.fixtures import MPPX_MODULES, missing

VERIFY = Path(__file__).with_name("mppx_v2_verify.mjs")
PAYEE = "0x" + "ab" * 20
OPERATOR = "0x" + "cd" * 20
TOKEN = "0x20c0000000000000000000000000000000000000"
ZERO = "0x" + "0" * 40
VALID_BEFORE = 1_900_000_000


def mppx_verdicts(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if shutil.which("node") is None or not (MPPX_MODULES / "mppx").exists():
        missing("mppx 0.11", "scripts/install-mppx.sh")
    done = subprocess.run(
        ["node", str(VERIFY), str(MPPX_MODULES)],
        input=json.dumps(cases).encode(), capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    verdicts: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(verdicts) == len(cases)
    return verdicts


def case(signer: LocalKeySigner, payload: dict[str, Any], *, sponsored: bool, chain_id: int = 4217,
         operator: str = ZERO, payee: str = PAYEE) -> dict[str, Any]:  # fmt: skip
    return {
        "chainId": chain_id, "escrow": V2_PRECOMPILE, "payee": payee, "currency": TOKEN,
        "operator": operator, "feePayer": sponsored, "payload": payload,
        "source": f"did:pkh:eip155:{chain_id}:{signer.address}",
    }  # fmt: skip


def test_mppx_accepts_our_v2_opens_top_ups_and_vouchers() -> None:
    cases: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    for index in range(6):
        signer = LocalKeySigner.generate()
        sponsored = index % 2 == 1
        operator = OPERATOR if index % 3 == 2 else ZERO
        delegate = LocalKeySigner.generate() if index == 4 else None
        chain_id = (4217, 42431, 31337)[index % 3]
        deposit = MAX_UINT96 if index == 5 else 1_000_000 * (index + 1)
        opened = build_v2_open(
            signer, chain_id=chain_id, payee=PAYEE, token=TOKEN, deposit=deposit,
            valid_before=VALID_BEFORE + index, max_fee_per_gas=20_000_000_000,
            cumulative=1_000 * index, operator=operator, sponsored=sponsored,
            authorized_signer=delegate.address if delegate else ZERO,
        )  # fmt: skip
        # The voucher signer is the payer unless an authorized signer was named.
        voucher_key = delegate or signer
        vouchers = [
            v2_voucher_payload(voucher_key, opened.descriptor, chain_id=chain_id, cumulative=c)
            for c in (1_000 * index, deposit)
        ]
        close = v2_voucher_payload(
            voucher_key, opened.descriptor, chain_id=chain_id, cumulative=deposit, action="close"
        )
        top_up = build_v2_top_up(
            signer, opened.descriptor, chain_id=chain_id, amount=5_000,
            valid_before=VALID_BEFORE, max_fee_per_gas=10_000_000_000, sponsored=sponsored,
        )  # fmt: skip
        if delegate is not None:
            # The open's first voucher is the payer's: sign it with the delegate as a server
            # expects it (authorizedSigner signs every voucher).
            opened.payload["signature"] = v2_voucher_payload(
                delegate, opened.descriptor, chain_id=chain_id, cumulative=1_000 * index
            )["signature"]
        for payload in (opened.payload, *vouchers, close, top_up.payload):
            cases.append(case(signer, payload, sponsored=sponsored, chain_id=chain_id,
                              operator=operator))  # fmt: skip
            expected.append({"channelId": opened.channel_id})
        assert opened.transaction[0] == (0x78 if sponsored else 0x76)
        assert opened.channel_id == channel_id_v2(
            opened.descriptor, escrow=V2_PRECOMPILE, chain_id=chain_id
        )
        expected[-5].update(
            expiringNonceHash=opened.descriptor.expiring_nonce_hash, deposit=str(deposit),
            feeToken=None if sponsored else TOKEN, sponsored=sponsored,
        )  # fmt: skip
    verdicts = mppx_verdicts(cases)
    for verdict, want, sent in zip(verdicts, expected, cases, strict=True):
        assert verdict["ok"], (verdict, sent["payload"]["action"])
        assert verdict["channelId"] == want["channelId"]
        if "expiringNonceHash" in want:
            assert verdict["expiringNonceHash"] == want["expiringNonceHash"]
            assert verdict["deposit"] == want["deposit"]
            assert (verdict["feeToken"] or None) == want["feeToken"]
            assert str(verdict["from"]).lower() == sent["payload"]["descriptor"]["payer"]


def test_mppx_refuses_what_does_not_check_out() -> None:
    """The same harness refuses tampered credentials: it is not a rubber stamp."""
    signer, other = LocalKeySigner.generate(), LocalKeySigner.generate()
    opened = build_v2_open(
        signer, chain_id=4217, payee=PAYEE, token=TOKEN, deposit=1_000_000,
        valid_before=VALID_BEFORE, max_fee_per_gas=20_000_000_000, cumulative=10,
    )  # fmt: skip
    sponsored = build_v2_open(
        signer, chain_id=4217, payee=PAYEE, token=TOKEN, deposit=1_000_000,
        valid_before=VALID_BEFORE, max_fee_per_gas=20_000_000_000, sponsored=True,
    )  # fmt: skip
    descriptor = opened.payload["descriptor"]
    foreign = v2_voucher_payload(other, opened.descriptor, chain_id=4217, cumulative=10)
    bad = [
        # the descriptor no longer derives the channel id
        case(
            signer,
            {**opened.payload, "descriptor": {**descriptor, "salt": "0x" + "11" * 32}},
            sponsored=False,
        ),
        # a voucher signed by someone else
        case(signer, foreign, sponsored=False),
        # the challenge asked for another payee
        case(signer, opened.payload, sponsored=False, payee="0x" + "ef" * 20),
        # another chain: the id derivation binds the chain id
        case(signer, opened.payload, sponsored=False, chain_id=42431),
        # the expiringNonceHash does not match the transaction (it covers the sponsored form)
        case(
            signer,
            {
                **opened.payload,
                "descriptor": sponsored.payload["descriptor"],
                "channelId": sponsored.channel_id,
            },
            sponsored=False,
        ),
        # a credential source that is neither payer nor authorized signer
        {
            **case(signer, foreign, sponsored=False),
            "payload": v2_voucher_payload(signer, opened.descriptor, chain_id=4217, cumulative=10),
            "source": f"did:pkh:eip155:4217:{other.address}",
        },
    ]
    for verdict in mppx_verdicts(bad):
        assert not verdict["ok"], verdict


def test_v2_amounts_are_uint96_and_tempo_session_still_refuses_v2() -> None:
    signer = LocalKeySigner.generate()
    with pytest.raises(ValueError):
        build_v2_open(
            signer, chain_id=4217, payee=PAYEE, token=TOKEN, deposit=MAX_UINT96 + 1,
            valid_before=VALID_BEFORE, max_fee_per_gas=1,
        )  # fmt: skip
    opened = build_v2_open(
        signer, chain_id=4217, payee=PAYEE, token=TOKEN, deposit=10,
        valid_before=VALID_BEFORE, max_fee_per_gas=1,
    )  # fmt: skip
    with pytest.raises(ValueError):
        v2_voucher_payload(signer, opened.descriptor, chain_id=4217, cumulative=MAX_UINT96 + 1)
    method = TempoSession(signer, max_deposit=1_000_000, chain_id=4217,
                          rpc_url="http://127.0.0.1:9")  # fmt: skip
    challenge = Challenge.create(
        id="x", realm="r", method="tempo", intent="session",
        request={"amount": "10", "currency": TOKEN, "recipient": PAYEE,
                 "methodDetails": {"chainId": 4217, "escrowContract": V2_PRECOMPILE,
                                   "sessionProtocol": "v2"}},
    )  # fmt: skip
    context = PaymentContext("http://a.test", "http://a.test/x", "GET", utcnow(SYSTEM_CLOCK))
    with pytest.raises(NotAllowed):
        method.quote(challenge, context)
