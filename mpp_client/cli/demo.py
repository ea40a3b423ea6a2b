"""``mpp demo``: the README demo (``mpp_client.demo``): a local Tempo chain and a real MPP
server, a funded wallet, paid requests under a spending cap, then what was paid and what is
left. Everything it starts is stopped at the end; nothing touches your own wallets or journal.
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from mpp_client.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the README demo on a local Tempo chain (needs the tempo extra and anvil)",
        description="Runs mpp_client.demo: starts a local Tempo chain (anvil) and an MPP "
        "server, funds a fresh wallet, pays for requests within a cap, prints the receipts "
        "and stops everything. Arguments after `demo` go to the demo.",
    )
    parser.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments for the demo")
    parser.set_defaults(run=run)


def run(inv: Invocation) -> int:
    try:
        demo = importlib.import_module("mpp_client.demo")
    except ImportError as exc:
        inv.output.error(
            f"the demo is not available ({exc}); install the tempo extra: "
            "pip install 'mpp-client[tempo]'"
        )
        return ExitCode.ERROR
    entry = getattr(demo, "main", None)
    if entry is None:
        inv.output.error("mpp_client.demo has no main()")
        return ExitCode.ERROR
    result = entry(list(inv.args.demo_args))
    return int(result or 0)
