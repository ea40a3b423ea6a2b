"""``mpp journal``: every payment the wallet made, unknown outcomes, reconciliation, resolution
by hand, export.

The journal is the wallet's SQLite file (``$MPP_JOURNAL``, ``journal`` in the config, or the
default in the user data directory). It stores amounts, payees, references, receipts and a
fingerprint of each credential, never the credential.

Each entry has a state of the payment lifecycle (``mpp_client.lifecycle``): ``reserved``,
``signed``, ``broadcast``, ``sent``, ``settled``, ``failed`` or ``unknown``, and what that means
for the budgets, shown as ``money``: ``held`` (reserved against the budgets, the outcome not
final), ``spent`` (settled, or failed after the value moved) or ``released`` (failed and proven
to have moved nothing; ``proof`` says how).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, get_args

from mpp_client.cli.accounts import open_wallet
from mpp_client.cli.config import ConfigError
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.output import format_money, short, table
from mpp_client.cli.secret_input import ask_on_terminal, terminal_available
from mpp_client.money import Money
from mpp_client.wallet import PaymentRecord, PaymentState

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation
    from mpp_client.wallet import Wallet

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

    resolve = sub.add_parser(
        "resolve",
        help="settle or fail an unknown payment by hand (when you know what became of it)",
        description="Record the outcome of a payment whose outcome is unknown, as your "
        "decision (proof 'owner'; the note is stored with the entry). 'settled': the amount "
        "stays counted as spent. 'failed': the amount is RELEASED back to your budgets, "
        "although the journal says the payment may have gone through; say so only when you "
        "know no value moved (the merchant or the payment backend confirmed it), and confirm "
        "with --yes (or at the prompt). Try `mpp journal reconcile` first.",
    )
    resolve.add_argument("id", help="the entry id (a unique prefix is enough)")
    resolve.add_argument(
        "outcome",
        choices=["settled", "failed"],
        help="settled: the value moved (stays spent); failed: no value moved (released)",
    )
    resolve.add_argument(
        "--note",
        required=True,
        metavar="TEXT",
        help="why (required; stored with the entry), e.g. 'merchant confirmed refund #123'",
    )
    resolve.add_argument(
        "--yes",
        action="store_true",
        help="confirm 'failed' without a prompt: it releases money the journal says may be "
        "gone (required when there is no terminal)",
    )
    resolve.set_defaults(run=run_resolve)

    export = sub.add_parser("export", help="write payments and receipts as JSON lines or CSV")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    export.add_argument("--state", action="append", choices=_STATES, help="only these states")
    export.set_defaults(run=run_export)


def money_status(record: PaymentRecord) -> str:
    """What the entry means for the budgets: ``held`` (reserved, the outcome not final),
    ``spent`` (settled, or failed after the value moved) or ``released`` (proven: nothing
    moved)."""
    if not record.held:
        return "released"
    if record.state == "settled" or (record.state == "failed" and record.money_moved):
        return "spent"
    return "held"


def _row(record: PaymentRecord) -> dict[str, str]:
    return {
        "id": record.id[:12],
        "created": record.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        "state": record.state,
        "money": money_status(record),
        "method": record.method,
        "amount": format_money(record.amount),
        "origin": record.origin,
        "reference": short(record.reference),
    }


_COLUMNS = ["id", "created", "state", "money", "method", "amount", "origin", "reference"]


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
    found = [r for r in records if r.id.startswith(prefix)] if prefix else []
    if not found:
        raise ConfigError(f"no journal entry {prefix!r}")
    if len(found) > 1:
        raise ConfigError(f"{prefix!r} matches {len(found)} entries: give more of the id")
    return found[0]


def _lookup(wallet: Wallet, entry_id: str) -> PaymentRecord:
    return wallet.journal.get(entry_id) or _find(wallet.payments(), entry_id)


def _details(record: PaymentRecord) -> str:
    data = record.to_dict()
    data["money"] = money_status(record)
    shown = {key: value for key, value in data.items() if value not in (None, "", [])}
    width = max(len(key) for key in shown)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in shown.items())


def run_show(inv: Invocation) -> int:
    with open_wallet(inv.config, with_methods=False) as wallet:
        record = _lookup(wallet, inv.args.id)
    inv.output.result(record.to_dict(), _details(record))
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
        "reserved against your budgets. Run `mpp journal reconcile` to ask the payment methods, "
        "or, when you know the outcome, `mpp journal resolve ID settled|failed --note TEXT`."
    )
    inv.output.result([r.to_dict() for r in records], text)
    return ExitCode.OK


def _money_of(record: PaymentRecord | None) -> str:
    return "-" if record is None else money_status(record)


def run_reconcile(inv: Invocation) -> int:
    inv.warn_test_method()
    with open_wallet(inv.config, wallet_names=inv.args.wallet) as wallet:
        results = wallet.reconcile()
        after = {r.entry_id: wallet.journal.get(r.entry_id) for r in results}
    data = []
    for r in results:
        record = after.get(r.entry_id)
        data.append(
            {
                "id": r.entry_id,
                "reference": r.reference,
                "outcome": r.outcome,
                "detail": r.detail,
                # The entry as it stands now: still ``unknown`` unless settled or failed.
                "state": None if record is None else record.state,
                "held": None if record is None else record.held,
            }
        )
    if not results:
        inv.output.result(data, "nothing to reconcile: no payment has an unknown outcome")
        return ExitCode.OK
    rows = [
        {
            "id": r.entry_id[:12],
            "reference": short(r.reference),
            "outcome": r.outcome,
            "money": _money_of(after.get(r.entry_id)),
            "detail": r.detail or "",
        }
        for r in results
    ]
    still = [r for r in results if r.outcome in ("pending", "skipped")]
    text = table(rows, ["id", "reference", "outcome", "money", "detail"])
    if still:
        skipped = sum(1 for r in still if r.outcome == "skipped")
        text += (
            f"\n\n{len(still)} still unknown; their amounts stay held. "
            + ("Pending ones: try again later. " if len(still) > skipped else "")
            + (
                "Skipped ones cannot be looked up by this wallet (see the detail): use the "
                "wallet that paid (--wallet), or "
                if skipped
                else "Or, "
            )
            + "when you know the outcome: `mpp journal resolve ID settled|failed --note TEXT`."
        )
    inv.output.result(data, text)
    # Still-unknown payments are an outcome the caller must look at again.
    return ExitCode.OUTCOME_UNKNOWN if still else ExitCode.OK


def run_resolve(inv: Invocation) -> int:
    args, out = inv.args, inv.output
    note = (args.note or "").strip()
    if not note:
        raise ConfigError("--note must say why (it is stored with the entry)")
    with open_wallet(inv.config, with_methods=False) as wallet:
        record = _lookup(wallet, args.id)
        if record.state != "unknown":
            raise ConfigError(
                f"journal entry {record.id} is {record.state}, not unknown: only payments "
                "whose outcome is unknown are resolved"
            )
        amount = format_money(record.amount)
        if args.outcome == "failed" and not args.yes:
            if not terminal_available():
                raise ConfigError(
                    "resolving a payment as failed releases its amount although it may have "
                    "been paid: confirm with --yes (there is no terminal to ask on)"
                )
            question = (
                f"Payment {record.id[:12]} ({amount} to {record.origin}) may have been paid. "
                "Record it as failed and RELEASE its amount back to your budgets?"
            )
            if not ask_on_terminal(question):
                out.error("not resolved: the entry stays unknown")
                return ExitCode.ERROR
        try:
            resolved = wallet.resolve(record.id, args.outcome, note)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    released = record.held and not resolved.held
    data = {
        "id": resolved.id,
        "previous_state": record.state,
        "state": resolved.state,
        "proof": resolved.proof,
        "held": resolved.held,
        # Base units of the entry's currency given back to the budgets (0: still counted).
        "released": resolved.exposure if released else 0,
        "entry": resolved.to_dict(),
    }
    if resolved.state == "settled":
        effect = f"{amount} stays counted as spent"
    elif released:
        held = Money(resolved.exposure, resolved.amount.currency)
        effect = f"{format_money(held)} released back to your budgets"
    else:
        effect = f"{amount} stays counted against your budgets"
    text = f"{resolved.id[:12]}: {record.state} -> {resolved.state} (by you: {note}); {effect}"
    out.result(data, text)
    return ExitCode.OK


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
