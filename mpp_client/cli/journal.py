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

import argparse
import re
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, get_args

from mpp_client.cli import journal_store
from mpp_client.cli.accounts import open_wallet
from mpp_client.cli.config import ConfigError
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.output import format_money, printable, short, table
from mpp_client.cli.secret_input import ask_on_terminal, terminal_available
from mpp_client.money import Currency, Money
from mpp_client.report.model import money_status, timezone_label
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
    lst.add_argument(
        "--since",
        type=_moment_argument,
        metavar="WHEN",
        help="only payments made at or after WHEN: a date (YYYY-MM-DD, from 00:00 local "
        "time) or a time (YYYY-MM-DDTHH:MM[:SS][+HH:MM|Z]; without an offset: local time)",
    )
    lst.add_argument(
        "--until",
        type=_moment_argument,
        metavar="WHEN",
        help="only payments made before WHEN: a date includes that whole day; a time as "
        "for --since",
    )
    lst.add_argument(
        "--today",
        action="store_true",
        help="only payments made today (local time; the same as --since TODAY'S DATE)",
    )
    lst.set_defaults(run=run_list, unknown_notice=True)

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
    journal_store.register(sub)  # migrate, copy: a fleet's PostgreSQL journal


# --- dates: parsed exactly, in the local time zone unless an offset is written -----------------

# ASCII digits only (re.ASCII), and \Z: no other script's digits, no trailing line break.
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?\Z",
    re.ASCII,
)


def _moment_argument(text: str) -> date | datetime:
    """``YYYY-MM-DD`` (a calendar day) or an ISO 8601 time; anything else is refused, never
    guessed (``03/04/2026``, ``2026-3-4``, ``20260304`` are usage errors)."""
    value = text.strip()
    try:
        if _DATE.match(value):
            return date.fromisoformat(value)
        if _DATETIME.match(value):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.astimezone()  # naive: local time
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM[:SS][+HH:MM|Z])"
    )


def _local_midnight(day: date) -> datetime:
    # Through the local zone's rules for that day (daylight saving time included).
    return datetime.combine(day, time(0)).astimezone()


def _window(inv: Invocation) -> tuple[datetime | None, datetime | None]:
    """``[since, until)`` from --since, --until and --today (aware datetimes)."""
    args = inv.args
    since: datetime | None = None
    until: datetime | None = None
    if args.today:
        if args.since is not None or args.until is not None:
            raise ConfigError("--today cannot be combined with --since or --until")
        today = datetime.fromtimestamp(inv.clock.time(), UTC).astimezone().date()
        return _local_midnight(today), _local_midnight(today + timedelta(days=1))
    if isinstance(args.since, datetime):
        since = args.since
    elif isinstance(args.since, date):
        since = _local_midnight(args.since)
    if isinstance(args.until, datetime):
        until = args.until
    elif isinstance(args.until, date):
        until = _local_midnight(args.until + timedelta(days=1))  # the whole day
    if since is not None and until is not None and until <= since:
        raise ConfigError("--until must be after --since")
    return since, until


def _row(record: PaymentRecord) -> dict[str, str]:
    # Each cell escaped on its own, line breaks and tabs included: a server's reference or
    # method name must not add a row or a column to the table.
    return {
        "id": printable(record.id[:12]),
        "created": record.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        "state": printable(record.state),
        "money": money_status(record),
        "method": printable(record.method),
        "amount": printable(format_money(record.amount)),
        "origin": printable(record.origin),
        "reference": printable(short(record.reference)),
    }


_COLUMNS = ["id", "created", "state", "money", "method", "amount", "origin", "reference"]


def run_list(inv: Invocation) -> int:
    args = inv.args
    since, until = _window(inv)
    with open_wallet(inv.config, with_methods=False, clock=inv.clock) as wallet:
        # The journal selects the window ([since, until), by creation time) itself: a long
        # journal is not read whole for a day's payments.
        records = wallet.journal.payments(
            state=args.state, origin=args.origin, method=args.method, since=since, until=until
        )
    if args.last is not None:
        records = records[-args.last :] if args.last > 0 else []
    zone = timezone_label(datetime.fromtimestamp(inv.clock.time(), UTC).astimezone())
    window = ""
    if since is not None or until is not None:
        start = "the start" if since is None else f"{since.astimezone():%Y-%m-%d %H:%M}"
        end = "now" if until is None else f"{until.astimezone():%Y-%m-%d %H:%M}"
        window = f" from {start} to {end}"
    if records:
        text = table([_row(r) for r in records], _COLUMNS) + f"\n\ntimes in {zone}"
    else:
        text = f"no payments in the journal{window}"
        window = ""
    if window:
        text += f"; payments{window} (end excluded)"
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


def _when(value: datetime | None) -> str | None:
    return (
        None
        if value is None
        else f"{value.astimezone():%Y-%m-%d %H:%M:%S %Z} ({value.isoformat()})"
    )


def _value_lines(value: Any, indent: str) -> list[str]:
    """A JSON value (a receipt) as ``key  value`` lines, nested keys indented."""
    if isinstance(value, dict):
        lines: list[str] = []
        width = max((len(str(k)) for k in value), default=0)
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{indent}{printable(key)}")
                lines += _value_lines(item, indent + "  ")
            else:
                lines.append(f"{indent}{printable(key):<{width}}  {_scalar(item)}")
        return lines
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, (dict, list)):
                out.append(f"{indent}-")
                out += _value_lines(item, indent + "  ")
            else:
                out.append(f"{indent}- {_scalar(item)}")
        return out
    return [f"{indent}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return printable(value)


def _details(record: PaymentRecord) -> str:
    """The entry as labelled lines: amounts with their currency, times local and UTC, payees
    and the receipt one field per line (never a Python repr)."""
    currency = record.amount.currency
    fields: list[tuple[str, str | None]] = [
        ("id", record.id),
        ("state", record.state),
        ("money", money_status(record)),
        ("created", _when(record.created_at)),
        ("updated", _when(record.updated_at)),
        ("origin", printable(record.origin)),
        ("url", printable(record.url)),
        ("request", printable(record.http_method)),
        ("method", f"{printable(record.method)}/{printable(record.intent)}"),
        ("amount", f"{format_money(record.amount)} ({record.amount.amount} base units)"),
        (
            "reserved",
            f"{format_money(Money(record.exposure, currency))} ({record.exposure} base units)",
        ),
        ("max fee", None if record.max_fee is None else format_money(record.max_fee)),
        ("currency", _currency_text(currency)),
        ("network", printable(record.network) if record.network else None),
        ("realm", printable(record.realm) if record.realm else None),
        ("challenge", printable(record.challenge_id)),
        ("call", record.call_id or None),
        ("label", printable(record.label) if record.label else None),
        ("reference", printable(record.reference) if record.reference else None),
        (
            "receipt ref",
            printable(record.receipt_reference) if record.receipt_reference else None,
        ),
        ("fingerprint", f"sha256:{record.fingerprint}" if record.fingerprint else None),
        ("payer", printable(record.payer) if record.payer else None),
        ("proof", record.proof),
        (
            "money moved",
            None if record.money_moved is None else ("yes" if record.money_moved else "no"),
        ),
        ("expires", _when(record.expires)),
        ("void after", _when(record.void_after)),
        ("reason", printable(record.reason) if record.reason else None),
    ]
    shown = [(k, v) for k, v in fields if v]
    width = max(len(k) for k, _ in [*shown, ("payees", "")])
    lines = [f"{key:<{width}}  {value}" for key, value in shown]
    if record.payees:
        lines.append("payees")
        for payee in record.payees:
            lines.append(
                f"  {printable(payee.address)}  {format_money(Money(payee.amount, currency))}"
            )
    if record.receipt:
        lines.append("receipt")
        lines += _value_lines(record.receipt, "  ")
    return "\n".join(lines)


def _currency_text(currency: Currency) -> str:
    text = f"{printable(currency)} ({printable(currency.code)}, {currency.decimals} decimals"
    if currency.network:
        text += f", network {printable(currency.network)}"
    return text + ")"


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
                return out.fail("not resolved: the entry stays unknown", ExitCode.ERROR, "declined")
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
