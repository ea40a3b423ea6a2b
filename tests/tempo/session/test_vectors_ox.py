"""Session encodings against ox (the library viem and mppx encode with), run in node: v2
channel ids and voucher digests (ox/tempo Channel), v1 voucher digests (ox EIP-712), v2
precompile calldata (ox AbiFunction), and our escrow's own view of v1 ids and digests."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from mpp_client.methods.tempo.escrow import (
    V2_PRECOMPILE,
    open_v2_data,
    request_close_v2_data,
    top_up_v2_data,
    withdraw_v2_data,
)
from mpp_client.methods.tempo.signer import LocalKeySigner, recover_address
from mpp_client.methods.tempo.voucher import (
    MAX_UINT96,
    ChannelDescriptor,
    channel_id_v2,
    check_low_s,
    voucher_digest,
)
from tests.peers.fixtures import MPPX_MODULES, missing

HERE = Path(__file__).parent


def _hex(rng: random.Random, size: int) -> str:
    return "0x" + rng.randbytes(size).hex()


def cases(count: int = 40) -> list[dict[str, object]]:
    rng = random.Random(18)
    out: list[dict[str, object]] = []
    for index in range(count):
        out.append({
            "payer": _hex(rng, 20), "payee": _hex(rng, 20),
            "operator": "0x" + "0" * 40 if index % 3 == 0 else _hex(rng, 20),
            "token": _hex(rng, 20), "salt": _hex(rng, 32),
            "authorizedSigner": "0x" + "0" * 40 if index % 2 else _hex(rng, 20),
            "expiringNonceHash": _hex(rng, 32), "chainId": rng.choice([4217, 42431, 31337]),
            "escrow": _hex(rng, 20), "channelId": _hex(rng, 32),
            "cumulative": str(rng.choice([0, 1, 250_000, MAX_UINT96, rng.randrange(MAX_UINT96)])),
        })  # fmt: skip
    return out


def test_ids_and_digests_match_ox() -> None:
    if shutil.which("node") is None or not (MPPX_MODULES / "ox").exists():
        missing("ox (with mppx)", "scripts/install-mppx.sh")
    inputs = cases()
    answer = subprocess.run(
        ["node", str(HERE / "ox_vectors.mjs"), str(MPPX_MODULES)],
        input=json.dumps(inputs).encode(), capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    expected = json.loads(answer.stdout)
    for case, ox in zip(inputs, expected, strict=True):
        descriptor = ChannelDescriptor(
            payer=str(case["payer"]), payee=str(case["payee"]), operator=str(case["operator"]),
            token=str(case["token"]), salt=str(case["salt"]),
            authorized_signer=str(case["authorizedSigner"]),
            expiring_nonce_hash=str(case["expiringNonceHash"]),
        )  # fmt: skip
        chain_id, cumulative = int(str(case["chainId"])), int(str(case["cumulative"]))
        ours = channel_id_v2(descriptor, escrow=V2_PRECOMPILE, chain_id=chain_id)
        assert ours == ox["v2Id"]
        v2 = voucher_digest("v2", chain_id, V2_PRECOMPILE, ours, cumulative)
        assert "0x" + v2.hex() == ox["v2Digest"]
        v1 = voucher_digest("v1", chain_id, str(case["escrow"]), str(case["channelId"]), cumulative)
        assert "0x" + v1.hex() == ox["v1Digest"]
        calldata = {
            "open": open_v2_data(
                descriptor.payee, descriptor.operator, descriptor.token, cumulative,
                descriptor.salt, descriptor.authorized_signer,
            ),
            "topUp": top_up_v2_data(descriptor, cumulative),
            "requestClose": request_close_v2_data(descriptor),
            "withdraw": withdraw_v2_data(descriptor),
        }  # fmt: skip
        assert {name: "0x" + data.hex() for name, data in calldata.items()} == ox["calldata"]


def test_amount_limits_and_low_s() -> None:
    with pytest.raises(ValueError):
        voucher_digest("v2", 4217, V2_PRECOMPILE, "0x" + "00" * 32, MAX_UINT96 + 1)
    voucher_digest("v1", 4217, V2_PRECOMPILE, "0x" + "00" * 32, MAX_UINT96 + 1)  # uint128 fits
    key = LocalKeySigner.generate()
    digest = voucher_digest("v1", 42431, "0x" + "11" * 20, "0x" + "22" * 32, 5)
    signature = key.sign_raw_hash(digest)
    check_low_s(signature)
    assert recover_address(digest, signature) == key.address
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high = signature[:32] + (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
    with pytest.raises(ValueError):
        check_low_s(high + bytes((55 - signature[64],)))


def test_a_v2_snapshot_is_trusted_only_when_it_checks_out() -> None:
    from mpp_client.methods.tempo.voucher import SessionSnapshot, verify_snapshot

    case = cases(1)[0]
    payer = str(case["payer"])
    descriptor = {
        "payer": payer, "payee": case["payee"], "operator": case["operator"],
        "token": case["token"], "salt": case["salt"], "authorizedSigner": case["authorizedSigner"],
        "expiringNonceHash": case["expiringNonceHash"],
    }  # fmt: skip
    parsed = ChannelDescriptor(
        payer=payer, payee=str(case["payee"]), operator=str(case["operator"]),
        token=str(case["token"]), salt=str(case["salt"]),
        authorized_signer=str(case["authorizedSigner"]),
        expiring_nonce_hash=str(case["expiringNonceHash"]),
    )  # fmt: skip
    channel = channel_id_v2(parsed, escrow=V2_PRECOMPILE, chain_id=4217)
    good = {
        "channelId": channel, "chainId": 4217, "escrow": V2_PRECOMPILE, "descriptor": descriptor,
        "deposit": "1000", "settled": "100", "acceptedCumulative": "300", "spent": "250",
        "requiredCumulative": "400",
    }  # fmt: skip

    def check(data: dict[str, object], highest: int | None = 300) -> None:
        verify_snapshot(
            SessionSnapshot.from_json(data), payer=payer, chain_id=4217, escrow=V2_PRECOMPILE,
            highest_signed=highest,
        )  # fmt: skip

    check(good)
    bad_cases: list[tuple[dict[str, object], int | None]] = [
        ({**good, "channelId": "0x" + "00" * 32}, 300),  # not derived from the descriptor
        ({**good, "descriptor": {**descriptor, "salt": "0x" + "01" * 32}}, 300),
        ({**good, "acceptedCumulative": "2000"}, 5000),  # above the deposit
        ({**good, "spent": "301"}, 300),
        ({**good, "chainId": 42431}, 300),
        ({**good, "deposit": str(2**96)}, 300),  # not a uint96
        (good, 299),  # more accepted than we ever signed
        (good, None),  # we do not know what we signed: never the server's word
    ]
    for data, highest in bad_cases:
        with pytest.raises(ValueError):
            check(data, highest)


def test_the_written_out_type_hashes_are_keccak256_of_their_strings() -> None:
    from mpp_client.methods.tempo import voucher
    from mpp_client.methods.tempo.keccak import keccak256

    domain = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    assert keccak256(domain) == voucher._DOMAIN_TYPE
    assert {
        "v1": keccak256(b"Voucher(bytes32 channelId,uint128 cumulativeAmount)"),
        "v2": keccak256(b"Voucher(bytes32 channelId,uint96 cumulativeAmount)"),
    } == voucher._VOUCHER_TYPE
    assert {
        "v1": keccak256(b"Tempo Stream Channel"),
        "v2": keccak256(b"TIP20 Channel Reserve"),
    } == voucher._DOMAIN_NAME
    assert keccak256(b"1") == voucher._VERSION_1
