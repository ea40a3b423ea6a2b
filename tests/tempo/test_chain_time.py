"""valid_before on a real chain (anvil) whose clock is not the local clock.

Servers simulate a pull credential at the latest block before broadcasting it (``eth_call``),
and anvil refuses an expiring nonce more than 30 s past that block. Each test starts its own
anvil (moving a chain's clock is permanent) and does what a server does with the credential:
simulate at the latest block, then broadcast.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from mpp_client.clock import SYSTEM_CLOCK, utcnow
from mpp_client.methods.tempo import PATH_USD, LocalKeySigner, TempoCharge
from mpp_client.methods.tempo.tip20 import transfer_data
from mpp_client.testing.anvil import AnvilChain

from .challenges import charge_request, context, make_challenge
from .driver import ChainRpc, drive
from .test_charge import decode_tx

pytestmark = [pytest.mark.chain]

MERCHANT = "0x" + "42" * 20


@pytest.fixture
def fresh_chain(anvil):  # the session fixture only makes sure anvil is installed
    chain = AnvilChain.start()
    yield chain
    chain.stop()


def sign_pull(chain: AnvilChain, signer: LocalKeySigner) -> dict[str, Any]:
    """A pull credential from TempoCharge on the real clock (a real chain has no other)."""
    method = TempoCharge(signer, chain_id=chain.chain_id, rpc_url=chain.rpc_url)
    now = utcnow(SYSTEM_CLOCK)
    challenge = make_challenge(
        charge_request("1000", recipient=MERCHANT, chain_id=chain.chain_id),
        expires=None,
    )
    ctx = context(now=now)
    rpc = ChainRpc()
    try:
        proof, _ = drive(method.pay(method.quote(challenge, ctx), ctx), rpc)
    finally:
        rpc.close()
    return {"raw": proof.payload["signature"], "tx": decode_tx(proof.payload["signature"])}


def simulate_and_broadcast(chain: AnvilChain, signer: LocalKeySigner, signed: dict) -> dict:
    """What the reference servers do with a pull credential."""
    tx = signed["tx"]
    [(_, _, data)] = tx["calls"]
    request = {
        "from": signer.address,
        "to": PATH_USD.address,
        "data": "0x" + data.hex(),
        "type": "0x76",
        "nonceKey": hex(tx["nonce_key"]),
        "nonce": "0x0",
        "validBefore": hex(tx["valid_before"]),
        "feeToken": PATH_USD.address,
    }
    chain.rpc("eth_call", request, "latest")  # raises RuntimeError when the node refuses
    receipt: dict = chain.rpc("eth_sendRawTransactionSync", signed["raw"])
    return receipt


def test_a_chain_whose_clock_leads_gets_a_valid_before_in_its_own_time(fresh_chain):
    chain = fresh_chain
    chain.rpc("evm_mine", hex(int(SYSTEM_CLOCK.time()) + 120))  # the chain is 2 minutes ahead
    signer = LocalKeySigner.generate()
    chain.fund(signer.address, 100_000)
    signed = sign_pull(chain, signer)
    assert signed["tx"]["valid_before"] >= chain.chain_time() + 20
    receipt = simulate_and_broadcast(chain, signer, signed)
    assert receipt["status"] == "0x1"
    assert chain.balance_of(MERCHANT) == 1000


def test_an_idle_chain_that_lags_gets_a_valid_before_in_its_own_time(fresh_chain):
    chain = fresh_chain
    signer = LocalKeySigner.generate()
    chain.fund(signer.address, 100_000)  # the last block for a while
    time.sleep(7)  # real seconds: anvil's clock is this machine's
    lag = SYSTEM_CLOCK.time() - chain.chain_time()
    assert lag > 5  # now+25 would be more than 30 s past the latest block
    signed = sign_pull(chain, signer)
    assert signed["tx"]["valid_before"] <= chain.chain_time() + 30
    receipt = simulate_and_broadcast(chain, signer, signed)
    assert receipt["status"] == "0x1"


def test_interval_mining_keeps_the_chain_clock_current(anvil):
    with AnvilChain.start(block_time=1) as chain:
        signer = LocalKeySigner.generate()
        chain.fund(signer.address, 100_000)
        time.sleep(2.5)
        assert SYSTEM_CLOCK.time() - chain.chain_time() < 2
        receipt = chain.send(signer, [(PATH_USD.address, transfer_data(MERCHANT, 1))])
        assert receipt["status"] == "0x1"
