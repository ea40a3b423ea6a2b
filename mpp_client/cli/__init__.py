"""``mpp``: pay for HTTP resources from the terminal, and manage wallets, budgets and the
payment journal.

    mpp fetch URL                 curl-like; pays a 402 within your spend policy
    mpp fetch --dry-run URL       what would be paid, and whether the policy allows it
    mpp wallet create NAME        a new Tempo wallet (key in the OS keyring or encrypted file)
    mpp budget show | set         caps, allowlists, approval threshold
    mpp journal list | show | unknown | reconcile | resolve | export
    mpp report [--html FILE]      spend per day, origin, method and cap
    mpp demo                      the README demo on a local Tempo chain
    mpp mcp serve                 the wallet as MCP tools for agent hosts (stdio, --http)

Human output by default, ``mpp --json COMMAND`` for machines. Exit codes are documented in
``mpp_client.cli.exit_codes`` (and ``mpp --help``). Configuration: ``mpp_client.cli.config``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mpp_client.cli import budget, demo, fetch, journal, mcp, report, wallets
from mpp_client.cli.config import ConfigError, http_url_problem, suggestion
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.invocation import Invocation
from mpp_client.cli.max_amount import parse_amount_limit
from mpp_client.cli.notices import LibraryWarnings
from mpp_client.cli.output import Output
from mpp_client.cli.secret_input import SecretInputError
from mpp_client.errors import JournalError, KeyStoreError, MppError

if TYPE_CHECKING:
    from mpp_client.clock import Clock

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


class UsageError(Exception):
    """A command line argparse refused: the ``message`` and the ``usage`` of the (sub)command."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse whose errors ``main`` reports (exit ``ExitCode.USAGE``, 2; as JSON with
    ``--json``), and which suggests the closest command or choice for a mistyped one."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, self.format_usage())

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and value not in choices:
            names = ", ".join(map(repr, choices))
            raise argparse.ArgumentError(
                action,
                f"invalid choice: {value!r}{suggestion(str(value), choices)} (choose from {names})",
            )


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


# --- argument checks: every owner input is refused with a usage error (exit 2) before anything
# runs, never a traceback from deep inside httpx or Decimal. They are installed here as
# argparse types on the arguments fetch.register defines.

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: header names, methods
# socket timeouts beyond this overflow the platform's clock type; a day is already generous.
_MAX_SECONDS = 86400.0


def _seconds_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    # float() accepts "nan", "inf" and "1e309" (inf): none is a timeout.
    if not math.isfinite(value) or not 0 < value <= _MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of seconds above 0 and at most {_MAX_SECONDS:g}"
        )
    return value


def _url_argument(text: str) -> str:
    import httpx

    problem = http_url_problem(text)
    if problem is None:
        try:
            httpx.URL(text)
        except (httpx.InvalidURL, ValueError) as exc:
            problem = f"not a valid URL ({exc})"
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def _header_argument(text: str) -> str:
    name, sep, value = text.partition(":")
    if not sep or not _TOKEN.match(name.strip()) or name != name.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'Name: value' (a header name is letters, digits and !#$%&'*+.^_`|~-)"
        )
    if any(not (" " <= c <= "~" or c == "\t") for c in value):
        # httpx sends header values as ASCII; a non-ASCII or control character (a CR/LF
        # could split the request) is refused here rather than failing mid-request.
        raise argparse.ArgumentTypeError(
            f"{text!r}: header values must be printable ASCII (percent-encode other characters)"
        )
    return text


def _method_argument(text: str) -> str:
    if not _TOKEN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP method (e.g. GET, POST)")
    return text


def _max_amount_argument(text: str) -> str:
    try:
        parse_amount_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text  # fetch.run reads it again: the type only refuses early


_FETCH_TYPES: dict[str, Callable[[str], Any]] = {
    "url": _url_argument,
    "max_time": _seconds_argument,
    "header": _header_argument,
    "request": _method_argument,
    "max_amount": _max_amount_argument,
}


def _undecodable(argv: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 (Python holds its bytes as lone surrogates, which
    no file, header or TOML document can carry), shown as bytes."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return repr(arg.encode("utf-8", "surrogateescape"))
    return None


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
    report.register(commands)
    demo.register(commands)
    mcp.register(commands)
    for name, sub in commands.choices.items():
        if name == "fetch":
            for action in sub._actions:
                if action.dest in _FETCH_TYPES:
                    action.type = _FETCH_TYPES[action.dest]
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


def _json_requested(arguments: Sequence[str]) -> bool:
    """Whether the command line asks for JSON output, before it is parsed (for its own usage
    errors): ``--json`` anywhere except after ``fetch``, where it is curl's request body."""
    if os.environ.get("MPP_OUTPUT", "").lower() == "json":
        return True
    for arg in arguments:
        if arg == "fetch":
            return False
        if arg == "--json":
            return True
    return False


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run ``mpp`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code. ``clock``:
    where every "now" and "today" comes from (tests pass a ``ManualClock``)."""
    parser = build_parser()
    arguments = list(argv) if argv is not None else sys.argv[1:]
    early = Output(json_mode=_json_requested(arguments))
    if (bad := _undecodable(arguments)) is not None:
        parser.print_usage(sys.stderr)
        return early.fail(
            f"argument {bad} is not valid UTF-8 (for binary request data use -d @FILE)",
            ExitCode.USAGE,
            "usage",
        )
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        return early.fail(exc.message, ExitCode.USAGE, "usage")
    except SystemExit as exit_:  # --help, --version
        return int(exit_.code) if isinstance(exit_.code, int) else int(ExitCode.USAGE)
    json_mode = bool(args.json_output) or os.environ.get("MPP_OUTPUT", "").lower() == "json"
    output = Output(json_mode=json_mode, quiet=bool(getattr(args, "quiet", False)))
    invocation = Invocation(args, output) if clock is None else Invocation(args, output, clock)
    with LibraryWarnings(output, unknown_notice=bool(getattr(args, "unknown_notice", False))):
        return _run(invocation)


def _run(invocation: Invocation) -> int:
    output = invocation.output
    try:
        return int(invocation.args.run(invocation))
    except ConfigError as exc:
        return output.fail(str(exc), ExitCode.USAGE, "usage")
    except SecretInputError as exc:
        return output.fail(str(exc), ExitCode.USAGE, "usage")
    except (KeyStoreError, JournalError) as exc:
        return output.fail(str(exc), ExitCode.ERROR, type(exc).__name__)
    except MppError as exc:
        from mpp_client.cli.exit_codes import exit_code_for

        return output.fail(str(exc), exit_code_for(exc), type(exc).__name__)
    except KeyboardInterrupt:
        return output.fail("interrupted", 130, "interrupted")
    except BrokenPipeError:
        # The reader went away (e.g. `mpp journal export | head`): not an error of ours.
        sys.stderr.close()
        return ExitCode.OK
