"""``mpp mcp serve``: the configured wallet as an MCP server for agent hosts.

Standard input/output by default (what agent hosts spawn); ``--http`` serves Streamable HTTP
on 127.0.0.1 only, behind a bearer token (``$MPP_MCP_TOKEN``, or a random one printed on
standard error). The tools and what they can and cannot do are in ``mpp_client.mcp.serve``.
The MCP SDK is imported only when the command runs (the ``mcp`` extra).
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from mpp_client.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation

__all__ = ["register", "run_serve"]

_DEFAULT_PORT = 8402
_LOOPBACK = ("127.0.0.1", "localhost")


def _loopback_host(text: str) -> str:
    if text.strip().lower() not in _LOOPBACK:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the MCP server only listens on 127.0.0.1 (anyone who can reach it can "
            "spend from this wallet)"
        )
    return "127.0.0.1"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 1 to 65535")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds above 0 and at most 86400")
    return value


def register(commands: Any) -> None:
    parser = commands.add_parser("mcp", help="serve the wallet to agent hosts over MCP")
    sub = parser.add_subparsers(dest="mcp_command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="an MCP server with fetch, quote, budget and payments tools",
        description=(
            "Expose this wallet to a model as MCP tools: fetch (pays a 402 within the spend "
            "policy), quote (price and verdict, pays nothing), budget and payments (read-only). "
            "No tool can change the policy; payments above the approval threshold are refused "
            "unless --ask-on-terminal can ask you. Standard input/output by default; --http "
            "for Streamable HTTP on 127.0.0.1 (bearer token: $MPP_MCP_TOKEN or printed)."
        ),
    )
    serve.add_argument(
        "--http", action="store_true", help="serve Streamable HTTP on 127.0.0.1 instead of stdio"
    )
    serve.add_argument(
        "--host",
        type=_loopback_host,
        default="127.0.0.1",
        help="only 127.0.0.1 (or localhost) is accepted",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=_DEFAULT_PORT,
        help=f"port for --http (default {_DEFAULT_PORT}); the endpoint is /mcp",
    )
    serve.add_argument(
        "--wallet",
        action="append",
        metavar="NAME",
        help="pay with this wallet only (repeatable; default: every configured wallet)",
    )
    serve.add_argument(
        "--max-time",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="timeout of each HTTP exchange (default 60)",
    )
    serve.add_argument(
        "--ask-on-terminal",
        action="store_true",
        help="ask on this terminal before payments the policy sends for approval (needs a "
        "terminal the agent host does not use; without it they are refused)",
    )
    serve.add_argument(
        "--allow-local",
        action="store_true",
        help="let the model fetch localhost and private-network addresses (off by default)",
    )
    serve.set_defaults(run=run_serve)


def run_serve(inv: Invocation) -> int:
    args = inv.args
    out = inv.output
    from mpp_client.errors import MissingExtra
    from mpp_client.extras import require_extra

    try:
        require_extra("mcp", "`mpp mcp serve`")  # the SDK is an optional extra
    except MissingExtra as exc:
        out.error(str(exc))
        return ExitCode.ERROR
    from mpp_client.cli.accounts import load_policy
    from mpp_client.cli.fetch import _approval
    from mpp_client.cli.output import Progress, format_money
    from mpp_client.cli.secret_input import terminal_available
    from mpp_client.mcp.serve import WalletTools, http_token, serve_http, serve_stdio

    inv.warn_test_method()
    approve = None
    if args.ask_on_terminal:
        if not terminal_available():
            out.error("--ask-on-terminal: there is no terminal to ask on")
            return ExitCode.USAGE
        approve = _approval(Progress(enabled=False))
    policy = load_policy(inv.config)
    if approve is None and policy.approve_above is not None:
        out.warn(
            f"payments above {format_money(policy.approve_above)} need approval and nobody can "
            "give it here: they are refused (see --ask-on-terminal)"
        )
    tools = WalletTools.open(
        inv.config,
        wallet_names=args.wallet,
        approve=approve,
        timeout=args.max_time,
        allow_local=args.allow_local,
    )
    if not tools.wallet.methods:
        out.warn("no wallet is configured, so a 402 cannot be paid (see `mpp wallet create`)")
    try:
        if args.http:
            token, generated = http_token()
            if generated:
                out.err.write(
                    f"mpp: bearer token for this run (set $MPP_MCP_TOKEN to choose one): {token}\n"
                )
                out.err.flush()
            serve_http(tools, port=args.port, token=token)
        else:
            serve_stdio(tools)
    finally:
        tools.close()
    return ExitCode.OK
