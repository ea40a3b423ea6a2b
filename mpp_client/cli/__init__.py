"""``mpp``: pay for HTTP resources from the terminal, and manage wallets, budgets and the
payment journal.

    mpp fetch URL                 curl-like; pays a 402 within your spend policy
    mpp fetch --dry-run URL       what would be paid, and whether the policy allows it
    mpp wallet create NAME        a new Tempo wallet (key in the OS keyring or encrypted file)
    mpp budget show | set         caps, allowlists, approval threshold
    mpp journal list | show | unknown | reconcile | resolve | export
    mpp demo                      the README demo on a local Tempo chain

Human output by default, ``mpp --json COMMAND`` for machines. Exit codes are documented in
``mpp_client.cli.exit_codes`` (and ``mpp --help``). Configuration: ``mpp_client.cli.config``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mpp_client.cli import budget, demo, fetch, journal, wallets
from mpp_client.cli.config import ConfigError
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.invocation import Invocation
from mpp_client.cli.output import Output
from mpp_client.cli.secret_input import SecretInputError
from mpp_client.errors import JournalError, KeyStoreError, MppError

__all__ = ["build_parser", "main"]

_EPILOG = """\
exit codes:
  0  success (fetch: a 2xx/3xx answer, paid or free)
  1  other error (network before paying, key store, journal)
  2  usage or configuration error
  3  refused by policy: spend policy, allowlists (chain, token, origin),
     --max-amount, approval, or too many unknown payments (wallet.max_unknown)
     (nothing paid)
  4  not payable: no usable challenge, expired offer, unsafe request (nothing paid)
  5  payment failed or rejected (the message says whether money moved)
  6  payment outcome unknown (see `mpp journal unknown`, `mpp journal reconcile`)
  7  HTTP error status (4xx/5xx, including a 402 that was not paid)

configuration: $MPP_CONFIG or <config dir>/mpp-client/config.toml; see docs/cli.md.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with ``ExitCode.USAGE`` (2) and our prefix on errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"mpp: {message}\n")


def _output_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # The same flags are accepted before and after the command; after it they only override
    # when given (SUPPRESS keeps the top-level value otherwise).
    default = False if top else argparse.SUPPRESS
    parser.add_argument(
        "--json",
        dest="json_output",
        action="store_true",
        default=default,
        help="machine-readable output: one JSON document on standard output",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="fewer notes on stderr"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mpp`` argument parser."""
    parser = _Parser(
        prog="mpp",
        description="Pay for HTTP resources over the Machine Payments Protocol (HTTP 402), "
        "within limits you set.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _output_flags(parser, top=True)
    from mpp_client import __version__

    parser.add_argument("--version", action="version", version=f"mpp {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    fetch.register(commands)
    wallets.register(commands)
    budget.register(commands)
    journal.register(commands)
    demo.register(commands)
    for name, sub in commands.choices.items():
        if name == "fetch":
            # After `fetch`, --json is curl's JSON request body; use `mpp --json fetch`.
            sub.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
            continue
        _output_flags(sub, top=False)
        sub_commands = [
            action for action in sub._actions if isinstance(action, argparse._SubParsersAction)
        ]
        for action in sub_commands:
            for leaf in action.choices.values():
                _output_flags(leaf, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mpp`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exit_:
        return int(exit_.code) if isinstance(exit_.code, int) else int(ExitCode.USAGE)
    json_mode = bool(args.json_output) or os.environ.get("MPP_OUTPUT", "").lower() == "json"
    output = Output(json_mode=json_mode, quiet=bool(getattr(args, "quiet", False)))
    invocation = Invocation(args, output)
    try:
        return int(args.run(invocation))
    except ConfigError as exc:
        output.error(str(exc))
        return ExitCode.USAGE
    except SecretInputError as exc:
        output.error(str(exc))
        return ExitCode.USAGE
    except (KeyStoreError, JournalError) as exc:
        output.error(str(exc))
        return ExitCode.ERROR
    except MppError as exc:
        from mpp_client.cli.exit_codes import exit_code_for

        output.error(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `mpp journal export | head`): not an error of ours.
        sys.stderr.close()
        return ExitCode.OK
