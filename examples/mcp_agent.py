"""An agent loop over MCP: connect to a server, list its tools, call them (paying the paid ones)
under a task budget, check what happened to each payment, and print what was paid.

Self-contained: by default it spawns the repository's paid test server over stdio
(tests/mcp/paid_server.py, run from a checkout, ``pip install "mpp-client[mcp]"``) and pays it
with ``TestMethod`` (moves no money):

    python examples/mcp_agent.py

Any stdio MCP server works the same (the plan below names the test server's tools):

    python examples/mcp_agent.py weather-mcp --flag

For real money, swap ``TestMethod()`` for a real method (e.g. ``TempoCharge``, see
examples/tempo_charge.py); for a Streamable HTTP server, see docs/mcp.md.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from mpp_client import PaymentOptions, PaymentRefused, Wallet
from mpp_client.mcp import PaymentSession, stdio_server
from mpp_client.testing import TestMethod
from mpp_client.wallet import usd

REPO = Path(__file__).resolve().parents[1]

# What a model decided to do: (tool, arguments). Each paid tool of the test server costs
# $0.001; the task's budget ($0.0025) covers two of them, so the third is refused.
PLAN: list[tuple[str, dict[str, Any]]] = [
    ("free", {}),
    ("paid", {"city": "Oslo"}),
    ("paid_meta", {"city": "Bergen"}),
    ("paid_iserror", {"city": "Tromso"}),
]


def server_params(argv: list[str]) -> StdioServerParameters:
    if argv:
        return StdioServerParameters(command=argv[0], args=argv[1:])
    # The test server, importable from the checkout (the SDK passes a minimal environment).
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return StdioServerParameters(
        command=sys.executable, args=["-m", "tests.mcp.paid_server"], cwd=str(REPO), env=env
    )


def text_of(result: Any) -> str:
    if result is None:
        return "-"
    return " ".join(getattr(block, "text", "?") for block in result.content)


async def run_agent(wallet: Wallet, params: StdioServerParameters) -> None:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        paying = PaymentSession(session, server=stdio_server("paid-test"), wallet=wallet)
        await paying.initialize()  # advertises the wallet's payment methods
        async with paying:
            listed = await paying.list_tools()
            available = {tool.name for tool in listed.tools}
            print(f"tools: {', '.join(sorted(available))}")

            # Price the first paid step without paying (nothing is signed or journaled).
            quoted = await paying.call_tool("paid", {}, options=PaymentOptions(dry_run=True))
            priced = quoted.payment
            if priced is not None and priced.quote is not None:
                print(f"quote: {priced.quote.amount}, allowed={priced.allowed}")

            with wallet.budget(usd("0.0025"), label="task-1"):
                for tool, arguments in PLAN:
                    if tool not in available:
                        print(f"{tool}: not offered by this server, skipped")
                        continue
                    try:
                        called = await paying.call_tool(tool, arguments)
                    except PaymentRefused as refused:  # nothing was signed
                        print(f"{tool}: refused, nothing paid: {refused.reason}")
                        continue
                    payment = called.payment
                    if payment is None:
                        print(f"{tool}: free -> {text_of(called.result)}")
                    elif payment.status == "paid" and payment.quote is not None:
                        receipt = payment.receipt  # the server's, or None (it is optional)
                        ref = receipt.reference if receipt is not None else payment.reference
                        print(
                            f"{tool}: paid {payment.quote.amount}"
                            f" (receipt {ref}) -> {text_of(called.result)}"
                        )
                    else:  # rejected, unknown (held until `mpp journal reconcile`), ...
                        print(f"{tool}: payment {payment.status}: {called.error}")

    print(f"journal ({len(wallet.payments(state='settled'))} settled):")
    for entry in wallet.payments():
        print(f"  {entry.state:8} {entry.amount} {entry.url} label={entry.label}")


def main() -> None:
    wallet = Wallet([TestMethod()], journal=":memory:")
    try:
        asyncio.run(run_agent(wallet, server_params(sys.argv[1:])))
    finally:
        wallet.close()


if __name__ == "__main__":
    main()
