"""The README demo: real Tempo payments to a real MPP server, all on this machine.

    bash scripts/install-anvil.sh && bash scripts/install-mppx.sh
    python -m mpp_client.demo

It starts a local Tempo chain (anvil ``--network tempo``) and an mppx 0.11 MPP server (node) on
127.0.0.1, creates a wallet key, funds it with 1.00 pathUSD from an anvil dev account, and makes
paid requests through ``PaymentTransport`` inside a 0.14 USD budget: some are paid, the ones
that would break the budget are refused before anything is signed. A budget counts what each
payment can cost at most: the amount plus, when you pay the network fee, the most that fee can
be (0.03 USD per payment at the method's defaults, 0.0375 for a split in two). It prints what
was paid, the receipts, and what is left, and stops everything it started (also on Ctrl-C or
errors).
Run it from a checkout of the repository (the server script is ``tests/peers/mppx_server.mjs``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mpp_client import MppError, PaymentRefused, PaymentTransport, payment_of
from mpp_client.methods.tempo import PATH_USD, LocalKeySigner, TempoCharge
from mpp_client.money import Currency, Money
from mpp_client.testing.anvil import DEV_KEYS, AnvilChain, AnvilNotFound, find_anvil

REPO = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = REPO / "tests" / "peers" / "mppx_server.mjs"
MPPX_MODULES = REPO / ".tools" / "mppx" / "node_modules"
PATH_USD_CURRENCY = Currency(PATH_USD.address, 6, symbol="pathUSD", usd_pegged=True)


def usd(base_units: int) -> str:
    """Base units of a 6-decimal dollar token as text (``10_000`` -> ``"0.010000"``)."""
    return str(Money(base_units, PATH_USD_CURRENCY).to_decimal())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_tools() -> str:
    """The path of ``node`` when anvil, node and mppx are installed; exits with what to run
    otherwise."""
    if not SERVER_SCRIPT.is_file():
        # Installed from a wheel: the MPP server script and the tool installers live in the
        # repository, not in the package. Say so, once, with the steps.
        raise SystemExit(
            "The demo needs a checkout of the mpp_client repository (its MPP server script "
            "tests/peers/mppx_server.mjs and the scripts that install anvil and mppx are not "
            "in the installed package). In a checkout run:\n"
            "  pip install -e '.[tempo]'\n"
            "  bash scripts/install-anvil.sh && bash scripts/install-mppx.sh  # Node.js 18+\n"
            "  mpp demo"
        )
    try:
        from mpp_client.extras import require_extra

        require_extra("tempo", "The demo")
    except ImportError as missing:
        raise SystemExit(str(missing)) from None
    problems = []
    try:
        find_anvil()
    except AnvilNotFound:
        problems.append("anvil: run  bash scripts/install-anvil.sh")
    node = shutil.which("node")
    if node is None:
        problems.append("node (Node.js >= 18) is not on PATH")
    if not (MPPX_MODULES / "mppx" / "package.json").is_file():
        problems.append("mppx: run  bash scripts/install-mppx.sh")
    if problems:
        raise SystemExit("The demo needs:\n  " + "\n  ".join(problems))
    assert node is not None
    return node


def start_server(
    node: str, chain: AnvilChain, recipient: str, split: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the mppx demo server on 127.0.0.1 against ``chain``, paying ``recipient`` (and
    ``split``); returns the process and its base URL once it answers."""
    port = _free_port()
    env = {
        **os.environ,
        "NODE_PATH": str(MPPX_MODULES),
        "PORT": str(port),
        "RPC_URL": chain.rpc_url,
        "CHAIN_ID": str(chain.chain_id),
        "RECIPIENT": recipient,
        "SPLIT_RECIPIENT": split,
        "FEE_PAYER_KEY": DEV_KEYS[2],
    }
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [node, str(SERVER_SCRIPT)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the mppx server exited: {err[-1000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the mppx server did not start in 30 s")
        time.sleep(0.05)


def stop_server(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a server started by ``start_server`` and close its pipe (no-op for ``None``)."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stderr is not None:
        process.stderr.close()


def main() -> int:
    """Run the demo; returns the process exit code."""
    from mpp_client.wallet import Wallet
    from mpp_client.wallet import usd as dollars

    node = check_tools()
    chain: AnvilChain | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        print("Starting a local Tempo chain (anvil --network tempo) ...")
        chain = AnvilChain.start()
        merchant = LocalKeySigner.generate().address
        partner = LocalKeySigner.generate().address
        print("Starting an mppx 0.11 MPP server ...")
        server, url = start_server(node, chain, merchant, partner)

        key = LocalKeySigner.generate()
        chain.fund(key.address, 1_000_000)
        print(f"Wallet {key.address} funded with {usd(chain.balance_of(key.address))} pathUSD")

        tempo = TempoCharge(key, chain_id=chain.chain_id, rpc_url=chain.rpc_url)
        wallet = Wallet([tempo], journal=":memory:")
        requests = [
            ("/split", "0.01 split between merchant and partner, up to 0.0375 fee"),
            ("/paid", "0.01, you pay the network fee (up to 0.03 held for it)"),
            ("/sponsored", "0.01, the server pays the fee"),
            ("/paid?amount=0.05", "0.05, more than the budget has left"),
            ("/paid", "0.01 + up to 0.03 fee: fits in what the budget has left"),
            ("/paid", "0.01, one request too many"),
        ]
        print(f"\nPaying {url} with a budget of 0.14 USD:\n")
        paid = 0
        with (
            httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client,
            wallet.budget(dollars("0.14"), label="demo") as budget,
        ):
            for path, what in requests:
                print(f"GET {path:<20} ({what})")
                try:
                    response = client.get(url + path)
                except PaymentRefused as refused:
                    print(f"    refused before signing: {refused.reason}\n")
                    continue
                payment = payment_of(response)
                if payment is None or payment.quote is None:
                    print(f"    HTTP {response.status_code}, nothing paid\n")
                    continue
                paid += payment.quote.amount.amount
                receipt = payment.receipt
                payees = ", ".join(
                    f"{p.address[:10]}.. {usd(p.amount)}" for p in payment.quote.payees
                )
                status = response.status_code
                print(f"    HTTP {status}  paid {payment.quote.amount}  to {payees}")
                if receipt is not None:
                    print(f"    receipt: {receipt.status}, tx {receipt.reference}")
                print()

        print("What is left:")
        print(f"  paid to servers:    {usd(paid)} pathUSD")
        print(f"  wallet balance:     {usd(chain.balance_of(key.address))} pathUSD (after fees)")
        print(f"  merchant received:  {usd(chain.balance_of(merchant))} pathUSD")
        print(f"  partner received:   {usd(chain.balance_of(partner))} pathUSD")
        left = budget.remaining
        shown = "-" if left is None else usd(left.amount)
        print(f"  budget left:        {shown} of 0.140000 USD (fees are held at their maximum)")
        print(f"  journal: {len(wallet.payments(state='settled'))} settled payments")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    except (MppError, RuntimeError, TimeoutError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    finally:
        stop_server(server)
        if chain is not None:
            chain.stop()
        print("Stopped the server and the chain.")


if __name__ == "__main__":
    raise SystemExit(main())
