"""``mpp journal``: every payment the wallet made, unknown outcomes, reconciliation, export.

The journal is the wallet's SQLite file (``$MPP_JOURNAL``, ``journal`` in the config, or the
default in the user data directory). It stores amounts, payees, references, receipts and a
fingerprint of each credential, never the credential.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, get_args

from mpp_client.cli.accounts import open_wallet
from mpp_client.cli.config import ConfigError
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.output import format_money, short, table
from mpp_client.wallet import PaymentRecord, PaymentState

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation

__all__ = ["register"]

_STATES = list(get_args(PaymentState))


def register(commands: Any) -> None:
    parser = commands.add_parser("journal", help="list, reconcile and export payments")
    sub = parser.add_subparsers(dest="journal_command", metavar="COMMAND", required=True)

    lst = sub.add_parser("list", help="list payments, oldest first")
    lst.add_argument("--state", action="append", choices=_STATES, help="only these states")
    lst.add_argument("--origin", help="only payments to this origin (scheme://host[:port])")
    lst.add_argument("--method", help="only this payment method")
    lst.add_argument("--last", type=int, metavar="N", help="only the N most recent")
    lst.set_defaults(run=run_list)

    show = sub.add_parser("show", help="one payment in full (receipt included)")
    show.add_argument("id", help="the entry id (a unique prefix is enough)")
    show.set_defaults(run=run_show)

    unknown = sub.add_parser(
        "unknown", help="payments whose outcome is unknown (their amount stays reserved)"
    )
    unknown.set_defaults(run=run_unknown)

    reconcile = sub.add_parser(
        "reconcile", help="ask each payment method what became of unknown payments"
    )
    reconcile.add_argument(
        "--wallet",
        action="append",
        metavar="NAME",
        help="use these wallets' methods (default: all)",
    )
    reconcile.set_defaults(run=run_reconcile)

    export = sub.add_parser("export", help="write payments and receipts as JSON lines or CSV")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    export.add_argument("--state", action="append", choices=_STATES, help="only these states")
    export.set_defaults(run=run_export)


def _row(record: PaymentRecord) -> dict[str, str]:
    return {
        "id": record.id[:12],
        "created": record.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        "state": record.state,
        "method": record.method,
        "amount": format_money(record.amount),
        "origin": record.origin,
        "reference": short(record.reference),
    }


_COLUMNS = ["id", "created", "state", "method", "amount", "origin", "reference"]


def run_list(inv: Invocation) -> int:
    args = inv.args
    with open_wallet(inv.config, with_methods=False) as wallet:
        records = wallet.payments(state=args.state, origin=args.origin, method=args.method)
    if args.last is not None:
        records = records[-args.last :] if args.last > 0 else []
    text = table([_row(r) for r in records], _COLUMNS) if records else "no payments in the journal"
    inv.output.result([r.to_dict() for r in records], text)
    return ExitCode.OK


def _find(records: list[PaymentRecord], prefix: str) -> PaymentRecord:
    found = [r for r in records if r.id.startswith(prefix)]
    if not found:
        raise ConfigError(f"no journal entry {prefix!r}")
    if len(found) > 1:
        raise ConfigError(f"{prefix!r} matches {len(found)} entries: give more of the id")
    return found[0]


def run_show(inv: Invocation) -> int:
    with open_wallet(inv.config, with_methods=False) as wallet:
        record = wallet.journal.get(inv.args.id) or _find(wallet.payments(), inv.args.id)
    data = record.to_dict()
    lines = [f"{key:<15} {value}" for key, value in data.items() if value not in (None, "")]
    inv.output.result(data, "\n".join(lines))
    return ExitCode.OK


def run_unknown(inv: Invocation) -> int:
    with open_wallet(inv.config, with_methods=False) as wallet:
        records = wallet.unknown_payments()
    if not records:
        inv.output.result([], "no payments with an unknown outcome")
        return ExitCode.OK
    text = (
        table([_row(r) for r in records], _COLUMNS)
        + f"\n\n{len(records)} payment(s) may or may not have settled; their amounts stay "
        "reserved against your budgets. Run `mpp journal reconcile` to ask the payment methods."
    )
    inv.output.result([r.to_dict() for r in records], text)
    return ExitCode.OK


def run_reconcile(inv: Invocation) -> int:
    inv.warn_test_method()
    with open_wallet(inv.config, wallet_names=inv.args.wallet) as wallet:
        results = wallet.reconcile()
    data = [
        {"id": r.entry_id, "reference": r.reference, "outcome": r.outcome, "detail": r.detail}
        for r in results
    ]
    if not results:
        inv.output.result(data, "nothing to reconcile: no payment has an unknown outcome")
        return ExitCode.OK
    rows = [
        {
            "id": r.entry_id[:12],
            "reference": short(r.reference),
            "outcome": r.outcome,
            "detail": r.detail or "",
        }
        for r in results
    ]
    pending = sum(1 for r in results if r.outcome in ("pending", "skipped"))
    text = table(rows, ["id", "reference", "outcome", "detail"])
    if pending:
        text += f"\n\n{pending} still unknown: try again later."
    inv.output.result(data, text)
    # Still-unknown payments are an outcome the caller must look at again.
    return ExitCode.OUTCOME_UNKNOWN if pending else ExitCode.OK


def run_export(inv: Invocation) -> int:
    args = inv.args
    with open_wallet(inv.config, with_methods=False) as wallet:
        if args.output:
            count = wallet.export(args.output, format=args.format, state=args.state)
        else:
            count = wallet.export(sys.stdout, format=args.format, state=args.state)
            sys.stdout.flush()
    if args.output:
        inv.output.info(f"wrote {count} payment(s) to {args.output}")
    return ExitCode.OK
