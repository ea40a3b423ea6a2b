"""The spend report as text for a terminal: a bar per day, tables with bars per origin and per
method, the caps with used/left, and the payments whose outcome is not final highlighted.

Colour only when asked (``color=True``: the CLI passes it for a terminal without ``NO_COLOR``);
without colour the highlights are still there as words and marks (``!``, ``░`` for held), so a
pipe, a file or a screen reader gets the same facts. Every journal string is escaped
(``printable``): an origin or a reason is server-chosen text.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from mpp_client.cli.output import format_money, printable
from mpp_client.money import Currency, Money
from mpp_client.report.model import DayTotal, GroupRow, Report, ReportEntry

__all__ = ["render_text"]

_EIGHTHS = " ▏▎▍▌▋▊▉"
_BAR = 30
_NEARLY, _HALF = Fraction(9, 10), Fraction(1, 2)
_RED, _YELLOW, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and text else text


def _solid(cells: Fraction) -> str:
    # Cells from exact amounts (no float in between): whole blocks and eighths of one.
    whole = int(cells)
    part = round((cells - whole) * 8)
    if part == 8:
        whole, part = whole + 1, 0
    return "█" * whole + (_EIGHTHS[part] if part else "")


def _bar(spent: int, held: int, scale: int, style: _Style) -> str:
    """``spent`` as solid blocks and ``held`` as light shade after it, on a ``_BAR``-wide
    scale where ``scale`` fills it; padded to ``_BAR`` (plus a cell for rounding)."""
    if scale <= 0:
        return " " * (_BAR + 1)
    solid = _solid(Fraction(_BAR * spent, scale))
    shade = "░" * max(1 if held else 0, round(Fraction(_BAR * held, scale)))
    return solid + style(_YELLOW, shade) + " " * max(0, _BAR + 1 - len(solid) - len(shade))


def _money(amount: int, currency: Currency) -> str:
    return _amount(Money(amount, currency))


def _amount(money: Money) -> str:
    # A currency's code and symbol came from a server or a token's metadata, like an origin.
    return printable(format_money(money))


def _table(rows: Sequence[Sequence[str]], header: Sequence[str], right: set[int]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _groups(title: str, rows: Sequence[GroupRow], style: _Style) -> list[str]:
    lines = [style(_BOLD, title)]
    if not rows:
        return [*lines, "  no payments"]
    scale = {r.currency: 0 for r in rows}
    for r in rows:
        scale[r.currency] = max(scale[r.currency], r.total)
    cells = [
        [
            printable(r.key),
            _money(r.spent, r.currency),
            _money(r.held, r.currency) if r.held else "-",
            str(r.payments) + (f" ({r.unknown} unknown)" if r.unknown else ""),
        ]
        for r in rows
    ]
    table = _table(cells, ["", "spent", "held", "payments"], {1, 2})
    out = [*lines, "  " + table[0]]
    for r, text in zip(rows, table[1:], strict=True):
        bar = _bar(r.spent, r.held, scale[r.currency], style)
        out.append(f"  {style(_RED, text) if r.unknown else text}  {bar}".rstrip())
    return out


def _day_lines(
    days: Sequence[DayTotal], scale: int, currency: Currency, style: _Style
) -> list[str]:
    """One bar per day with payments; a run of three or more days without any is one line."""
    lines: list[str] = []
    quiet: list[DayTotal] = []
    for day in [*days, None]:
        if day is not None and not day.spent and not day.held:
            quiet.append(day)
            continue
        if len(quiet) >= 3:
            run = f"  {quiet[0].day:%a %m-%d} to {quiet[-1].day:%a %m-%d}: none"
            lines.append(style(_DIM, run))
        else:
            lines += [f"  {d.day:%a %m-%d}  {' ' * (_BAR + 1)} {style(_DIM, '-')}" for d in quiet]
        quiet = []
        if day is None:
            break
        shown = [_money(day.spent, currency)] if day.spent else []
        if day.held:
            shown.append(f"{_money(day.held, currency)} held")
        bar = _bar(day.spent, day.held, scale, style)
        lines.append(f"  {day.day:%a %m-%d}  {bar} {' + '.join(shown)}")
    return lines


def _attention(entries: Sequence[ReportEntry], style: _Style) -> list[str]:
    unknown = [e for e in entries if e.state == "unknown"]
    title = (
        f"! {len(entries)} payment(s) not final"
        + (f", {len(unknown)} with an unknown outcome" if unknown else "")
        + ": their amounts stay held against your budgets"
    )
    lines = [style(_RED if unknown else _YELLOW, style(_BOLD, title))]
    cells = [
        [
            printable(e.id[:12]),
            e.created.strftime("%Y-%m-%d %H:%M"),
            e.state.upper() if e.state == "unknown" else printable(e.state),
            _amount(e.amount),
            printable(e.origin),
            printable(e.reason or ""),
        ]
        for e in entries
    ]
    table = _table(cells, ["id", "created", "state", "amount", "origin", "reason"], {3})
    lines.append("  " + table[0])
    for e, text in zip(entries, table[1:], strict=True):
        lines.append("  " + style(_RED if e.state == "unknown" else _YELLOW, text))
    if unknown:
        lines.append(
            "  Run `mpp journal reconcile` to ask the payment methods; when you know the "
            "outcome, `mpp journal resolve ID settled|failed --note TEXT`."
        )
    return lines


def render_text(report: Report, *, color: bool = False) -> str:
    """The report as lines of text (ANSI colour only when ``color``)."""
    style = _Style(color)
    first, last = report.days[0], report.days[-1]
    lines = [
        style(_BOLD, f"Spend from {first} to {last} ({len(report.days)} days)"),
        f"times in {printable(report.timezone)}; generated {report.generated_at:%Y-%m-%d %H:%M}; "
        "amounts are what the payees were paid (fees not included)",
        "",
    ]
    if report.attention:
        lines += [*_attention(report.attention, style), ""]
    if not report.currencies:
        lines += ["no payments in these days", ""]
    for currency in report.currencies:
        total = report.totals[currency]
        held = f", {_money(total.held, currency)} held" if total.held else ""
        lines.append(
            style(_BOLD, f"Per day ({printable(currency)})")
            + f": {_money(total.spent, currency)} spent{held}"
        )
        days = report.daily[currency]
        scale = max(d.spent + d.held for d in days)
        lines += [*_day_lines(days, scale, currency, style), ""]
    lines += [*_groups("Per origin", report.origins, style), ""]
    lines += [*_groups("Per method", report.methods, style), ""]
    lines.append(style(_BOLD, "Caps (as the journal stands now)"))
    if not report.caps:
        lines.append("  no limits: every payment is refused (require_limit)")
    else:
        cells = []
        bars = []
        for cap in report.caps:
            used = "-" if cap.used is None else _amount(cap.used)
            left = "-" if cap.left is None else _amount(cap.left)
            scope = ", ".join(f"{k}={printable(v)}" for k, v in cap.scope.items()) or "all"
            cells.append([printable(cap.rule), cap.per, _amount(cap.cap), used, left, scope])
            share = cap.share
            if share is None:
                bars.append("")
            else:
                meter = _solid(_BAR * min(share, Fraction(1)) / 2)
                code = _RED if share >= _NEARLY else _YELLOW if share >= _HALF else ""
                bars.append(style(code, meter) + f" {cap.percent}")
        table = _table(cells, ["rule", "per", "cap", "used", "left", "scope"], {2, 3, 4})
        lines.append("  " + table[0])
        lines += [f"  {text}  {bar}".rstrip() for text, bar in zip(table[1:], bars, strict=True)]
    return "\n".join(lines).rstrip() + "\n"
