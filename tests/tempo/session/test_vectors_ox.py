"""Session encodings against ox (the library viem and mppx encode with), run in node: v2
channel ids and voucher digests (ox/tempo Channel), v1 voucher digests (ox EIP-712), and our
escrow's own view of v1 ids and digests."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from mpp_client.methods.tempo.escrow import V2_PRECOMPILE
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
