"""``mpp`` on the real local stack: anvil (``--network tempo``) and pympp 0.16's server.

A newcomer's path: import a funded key, look at the balance, quote, pay, find the payment in
the journal. Balances on chain must move exactly as charged.
"""

from __future__ import annotations

import pytest

from mpp_client.methods.tempo import PATH_USD, LocalKeySigner

pytestmark = [pytest.mark.chain, pytest.mark.peer]


@pytest.fixture
def funded(mpp, anvil):
    """A wallet ``payer`` on the local chain holding 2.00 pathUSD."""
    signer = LocalKeySigner.generate()
    anvil.fund(signer.address, 2_000_000)
    result = mpp(
        "wallet", "import", "payer", "--method", "tempo",
        "--chain-id", str(anvil.chain_id), "--rpc-url", anvil.rpc_url,
        input=signer.export_private_key() + "\n",
        env={"MPP_TEST_METHOD": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    mpp.env["MPP_TEST_METHOD"] = "0"
    return signer


def test_wallet_show_reads_the_balance_from_the_chain(mpp, funded):
    code, data = mpp.json("wallet", "show", "payer", "--balance")

    assert code == 0
    path_usd = next(b for b in data["balances"] if b["token"] == PATH_USD.address)
    assert path_usd["amount"] == 2_000_000 and path_usd["amount_display"] == "2.00 pathUSD"


def test_dry_run_quotes_the_pympp_offer_without_signing(mpp, funded, anvil, pympp_server,
                                                       pympp_merchant):  # fmt: skip
    before = anvil.balance_of(funded.address)

    code, data = mpp.json("fetch", "--dry-run", f"{pympp_server.url}/paid")

    assert code == 0, data
    quote = data["quote"]
    assert quote["method"] == "tempo" and quote["amount"] == 10_000  # 0.01 pathUSD
    [payee] = quote["payees"]
    assert payee["address"].lower() == pympp_merchant.recipient.lower()
    assert payee["amount"] == 10_000
    assert anvil.balance_of(funded.address) == before
    assert mpp.json("journal", "list")[1] == []


def test_fetch_pays_pympp_on_chain_and_the_journal_has_the_transaction(
    mpp, funded, anvil, pympp_server, pympp_merchant
):
    merchant_before = anvil.balance_of(pympp_merchant.recipient)

    result = mpp("fetch", "-v", f"{pympp_server.url}/paid")

    assert result.returncode == 0, result.stderr
    assert anvil.balance_of(pympp_merchant.recipient) - merchant_before == 10_000
    [entry] = mpp.json("journal", "list")[1]
    assert entry["state"] == "settled" and entry["method"] == "tempo"
    assert entry["amount"] == 10_000 and entry["decimals"] == 6
    tx = entry["reference"]
    receipt = anvil.receipt(tx)
    assert receipt is not None and receipt["status"] == "0x1"
    assert f"reference={tx}" in result.stderr
    # The signed transaction is the credential: it never appears on the terminal.
    assert "0x76" not in result.stdout


def test_max_amount_below_the_pympp_price_signs_nothing(mpp, funded, anvil, pympp_server):
    before = anvil.balance_of(funded.address)

    result = mpp("fetch", "--max-amount", "0.005USD", f"{pympp_server.url}/paid")

    assert result.returncode == 3
    assert anvil.balance_of(funded.address) == before
    assert mpp.json("journal", "list")[1] == []


def test_a_challenge_for_another_chain_is_refused_before_signing(mpp, funded, anvil, pympp_server):
    before = anvil.balance_of(funded.address)

    result = mpp("fetch", f"{pympp_server.url}/paid?chain=4217")

    assert result.returncode == 3
    assert "(tempo.chain)" in result.stderr and "Nothing was paid" in result.stderr
    assert anvil.balance_of(funded.address) == before
