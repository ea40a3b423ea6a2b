"""``mpp report``: where the money went, at a glance (see ``mpp_client.report``).

In the terminal: spend per day for the last 30 days as bars, per origin and per method as
tables with bars, each cap with used/left, and the payments whose outcome is not final
highlighted (colour only on a terminal, never with ``NO_COLOR``). ``--html FILE`` writes the
same as one self-contained HTML page, filterable by origin and date. ``mpp --json report``
prints the figures as JSON (amounts in base units with their currency).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpp_client.cli.accounts import open_wallet
from mpp_client.cli.config import ConfigError
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.output import money_json
from mpp_client.money import Money
from mpp_client.wallet import StaticPrices

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation
    from mpp_client.report import Report

__all__ = ["register", "report_json", "wants_color"]

_MAX_DAYS = 366


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="spend per day, origin, method and cap (terminal, or --html FILE)",
        description="Spend of the last 30 days (from today, in your local time zone) per day, "
        "per origin and per method, each cap with what it used and what is left, and the "
        "payments whose outcome is not final. --html FILE writes one self-contained page "
        "(no network) filterable by origin and date.",
    )
    parser.add_argument(
        "--html", metavar="FILE", help="write the report as a self-contained HTML page"
    )
    parser.add_argument(
        "--days",
        type=_days_argument,
        default=30,
        metavar="N",
        help="how many days, today included (default 30)",
    )
    parser.set_defaults(run=run)


def _days_argument(text: str) -> int:
    import argparse

    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= _MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of days, 1 to {_MAX_DAYS}")
    return int(text)


def wants_color(stream: Any) -> bool:
    """Colour only for a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)
    or ``TERM=dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _row(row: Any) -> dict[str, Any]:
    return {
        "key": row.key,
        "spent": money_json(Money(row.spent, row.currency)),
        "held": money_json(Money(row.held, row.currency)),
        "payments": row.payments,
        "unknown": row.unknown,
    }


def report_json(report: Report) -> dict[str, Any]:
    """The report as ``mpp --json report`` prints it (``report`` in ``mpp_client.cli.schema``)."""
    return {
        "generated_at": report.generated_at.isoformat(),
        "timezone": report.timezone,
        "from": str(report.days[0]),
        "to": str(report.days[-1]),
        "totals": [
            {
                "spent": money_json(Money(t.spent, c)),
                "held": money_json(Money(t.held, c)),
            }
            for c, t in report.totals.items()
        ],
        "daily": [
            {
                "day": str(d.day),
                "spent": money_json(Money(d.spent, c)),
                "held": money_json(Money(d.held, c)),
            }
            for c, days in report.daily.items()
            for d in days
        ],
        "origins": [_row(r) for r in report.origins],
        "methods": [_row(r) for r in report.methods],
        "caps": [
            {
                "rule": cap.rule,
                "per": cap.per,
                "cap": money_json(cap.cap),
                "used": None if cap.used is None else money_json(cap.used),
                "left": None if cap.left is None else money_json(cap.left),
                "scope": cap.scope,
            }
            for cap in report.caps
        ],
        "attention": [
            {
                "id": e.id,
                "created_at": e.created.isoformat(),
                "state": e.state,
                "origin": e.origin,
                "method": e.method,
                "reason": e.reason,
                **money_json(e.amount),
            }
            for e in report.attention
        ],
    }


def run(inv: Invocation) -> int:
    from mpp_client.report import build_report, render_html, render_text

    out = inv.output
    with open_wallet(inv.config, with_methods=False, clock=inv.clock) as wallet:
        prices = wallet.prices if isinstance(wallet.prices, StaticPrices) else None
        report = build_report(
            wallet.journal, wallet.policy, clock=inv.clock, prices=prices, days=inv.args.days
        )
    if inv.args.html:
        path = Path(inv.args.html)
        try:
            path.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
        data = {"html": str(path), **report_json(report)}
        out.result(data, f"wrote the report to {path} (open it in a browser; it needs no network)")
        return ExitCode.OK
    # render_text escapes every journal string itself; its own colour codes must stay.
    text = render_text(report, color=wants_color(out.out))
    out.result(report_json(report), text, escaped=True)
    return ExitCode.OK
