"""``mpp budget``: show the spend policy with what each limit has used, change it, and trust a
payee change that payee pinning refused.

The policy lives in ``policy.toml`` next to the config file, in the format
``SpendPolicy.from_toml`` reads (so the same file works from Python). Without the file the
wallet's safe defaults apply. ``mpp budget set`` writes the whole policy to the file.

Payee pins (trust on first use: the payees, token and chain an origin was first paid with, per
method) live in the journal. ``mpp budget trust ORIGIN --method M --payee ADDR`` adds payees to
an origin's pin (``--token`` / ``--network`` replace the pinned token or chain), after a
confirmation on the terminal or ``--yes``.
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpp_client.cli.accounts import load_policy
from mpp_client.cli.config import ConfigError, dump_toml, write_private
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.output import money_json, printable, table
from mpp_client.cli.secret_input import ask_on_terminal, terminal_available
from mpp_client.money import Money
from mpp_client.report.caps import SCOPES, cap_usage
from mpp_client.wallet import USD_PEGGED, Limit, SpendPolicy, StaticPrices
from mpp_client.wallet.policy import Pin, Window, parse_cap, parse_origin
from mpp_client.wallet.prices import is_usd_cap

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation

__all__ = ["money_text", "policy_mapping", "register", "trust_command"]

_WINDOWS: tuple[Window, ...] = ("payment", "call", "hour", "day", "lifetime")
_SCOPES = SCOPES


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "budget", help="show or change the spend policy (caps, allowlists, approval)"
    )
    sub = parser.add_subparsers(dest="budget_command", metavar="COMMAND", required=True)
    show = sub.add_parser("show", help="every limit with what it has used and what is left")
    show.set_defaults(run=run_show, unknown_notice=True)

    trust = sub.add_parser(
        "trust",
        help="accept a new payee (or token, chain) for an origin that payee pinning refused",
        description="Payee pinning remembers the payees, token and chain each origin was "
        "first paid with (per payment method) and refuses a change. When you know the "
        "change is right (the merchant added a payee, e.g. a split payment), add it to the "
        "pin: the next payment is checked against the new pin. Asks for confirmation on "
        "the terminal, or give --yes.",
    )
    trust.add_argument("origin", type=_origin_argument, help="scheme://host[:port]")
    trust.add_argument(
        "--method", required=True, type=_scope_argument, help="the payment method (e.g. tempo)"
    )
    trust.add_argument(
        "--payee",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a payee to trust for this origin (repeatable; added to the pinned ones)",
    )
    trust.add_argument(
        "--token", type=_scope_argument, help="the new token (currency code) to pin instead"
    )
    trust.add_argument(
        "--network", type=_scope_argument, help="the new chain / network to pin instead"
    )
    trust.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation (required without a terminal and with --json)",
    )
    trust.set_defaults(run=run_trust)

    change = sub.add_parser(
        "set",
        help="set or remove caps, allowlists and the approval threshold",
        description="Amounts: '0.50 USD' (dollars: applies to every dollar stablecoin), "
        "'1000 sat'. 'none' removes. Scope options narrow the caps given in the same "
        "command. Example: mpp budget set --payment 0.10USD --day 2USD",
    )
    for window in _WINDOWS:
        change.add_argument(
            f"--{window}",
            metavar="AMOUNT",
            type=_amount_argument,
            help=f"cap per {window}" if window != "lifetime" else "cap over the whole journal",
        )
    for scope in _SCOPES:
        change.add_argument(
            f"--{scope}",
            dest=f"scope_{scope}",
            metavar=scope.upper(),
            type=_origin_argument if scope == "origin" else _scope_argument,
            help=f"only payments with this {scope}",
        )
    change.add_argument(
        "--approve-above",
        metavar="AMOUNT",
        type=_amount_argument,
        help="ask before paying more than this (mpp fetch asks on the terminal); 'none'",
    )
    change.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        type=_origin_argument,
        help="only pay these origins (repeatable; adds to the list)",
    )
    change.add_argument("--allow-any-origin", action="store_true", help="clear the origin list")
    change.add_argument(
        "--reset", action="store_true", help="go back to the safe defaults (delete the file)"
    )
    change.set_defaults(run=run_set)


# --- writing the policy file --------------------------------------------------------------------


def money_text(money: Money) -> Any:
    """A cap as ``SpendPolicy.from_toml`` reads it: ``"0.5 USD"``, ``"1000 sat"``, or a table
    in base units."""
    currency = money.currency
    if is_usd_cap(currency):
        return f"{_plain(money.to_decimal())} USD"
    if currency.code == "sat" and currency.decimals == 0:
        return f"{money.amount} sat"
    table_: dict[str, Any] = {
        "amount": money.amount,
        "currency": currency.code,
        "decimals": currency.decimals,
    }
    if currency.network is not None:
        table_["network"] = currency.network
    if currency.usd_pegged:
        table_["usd_pegged"] = True
    return table_


def _plain(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def policy_mapping(policy: SpendPolicy) -> dict[str, Any]:
    """``policy`` as the document ``SpendPolicy.from_mapping`` reads back to an equal policy."""
    section: dict[str, Any] = {"default_limits": False}
    for name in ("origins", "payees", "networks", "tokens", "methods"):
        value = getattr(policy, name)
        if value is not None:
            section[name] = sorted(value)
    if not policy.require_limit:
        section["require_limit"] = False
    if not policy.pin_payees:
        section["pin_payees"] = False
    if policy.on_payee_change != "refuse":
        section["on_payee_change"] = policy.on_payee_change
    if policy.approve_above is not None:
        section["approve_above"] = money_text(policy.approve_above)
    limits = []
    for limit in policy.limits:
        entry: dict[str, Any] = {"cap": money_text(limit.cap), "per": limit.per}
        for key in (*_SCOPES, "name"):
            if getattr(limit, key) is not None:
                entry[key] = getattr(limit, key)
        limits.append(entry)
    data: dict[str, Any] = {"policy": section}
    if limits:
        data["limit"] = limits
    return data


def _write(inv: Invocation, policy: SpendPolicy) -> None:
    header = (
        "# mpp spend policy (SpendPolicy.from_toml format; see docs/cli.md).\n"
        "# `mpp budget set` rewrites this file: comments are not kept.\n"
    )
    path = inv.config.policy_path

    def check(written: Path) -> None:
        # Read the new file back before it replaces the old one: what is written must be what
        # the wallet will load, or the working policy stays.
        try:
            again = SpendPolicy.from_toml(written)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{path} not written (it would not load): {exc}") from None
        if again != policy:
            raise ConfigError(f"{path} not written: it would not read back identically")

    write_private(path, header + dump_toml(policy_mapping(policy)), check=check)


# --- show ---------------------------------------------------------------------------------------


def format_cap(money: Money) -> str:
    """``$0.50`` for dollar caps, ``1000 sat``, else the exact amount and currency."""
    if is_usd_cap(money.currency):
        return f"${_plain(money.to_decimal())}"
    return str(money)


def run_show(inv: Invocation) -> int:
    from mpp_client.cli.accounts import open_wallet

    config = inv.config
    policy = load_policy(config)
    source = str(config.policy_path) if config.policy_path.exists() else "built-in defaults"
    with open_wallet(config, with_methods=False, clock=inv.clock) as wallet:
        prices = wallet.prices if isinstance(wallet.prices, StaticPrices) else None
        usages = cap_usage(policy, wallet.journal.ledger(), prices)
    rows: list[dict[str, str]] = []
    limits: list[dict[str, Any]] = []
    for usage in usages:
        scope = ", ".join(f"{k}={v}" for k, v in usage.scope.items())
        rows.append(
            {
                "rule": usage.rule,
                "per": usage.per,
                "cap": format_cap(usage.cap),
                "used": "-" if usage.used is None else format_cap(usage.used),
                "left": "-" if usage.left is None else format_cap(usage.left),
                "scope": scope or "all",
            }
        )
        limits.append(
            {
                "rule": usage.rule,
                "per": usage.per,
                "cap": money_json(usage.cap),
                "scope": usage.scope,
                # Base units of the cap's currency (used rounded up, left down, when prices
                # make them fractional); null for per-payment caps or a missing price.
                "used": None if usage.used is None else money_json(usage.used),
                "left": None if usage.left is None else money_json(usage.left),
            }
        )
    data = {
        "source": source,
        "limits": limits,
        "require_limit": policy.require_limit,
        "origins": None if policy.origins is None else sorted(policy.origins),
        "payees": None if policy.payees is None else sorted(policy.payees),
        "methods": None if policy.methods is None else sorted(policy.methods),
        "pin_payees": policy.pin_payees,
        "on_payee_change": policy.on_payee_change,
        "approve_above": None if policy.approve_above is None else money_json(policy.approve_above),
    }
    lines = [f"spend policy: {source}", ""]
    lines.append(
        table(rows, ["rule", "per", "cap", "used", "left", "scope"])
        if rows
        else "no limits: every payment is refused (require_limit)"
    )
    lines.append("")
    lines.append(
        f"origins allowed: {', '.join(sorted(policy.origins)) if policy.origins else 'any'}"
    )
    lines.append(f"payee pinning:   {'on' if policy.pin_payees else 'off'}")
    approve = format_cap(policy.approve_above) if policy.approve_above else "never"
    lines.append(f"ask above:       {approve}")
    inv.output.result(data, "\n".join(lines))
    return ExitCode.OK


# --- trust --------------------------------------------------------------------------------------


def trust_command(
    origin: str,
    method: str,
    payees: list[str],
    *,
    token: str | None = None,
    network: str | None = None,
) -> str:
    """The ``mpp budget trust`` command line that adds ``payees`` to ``origin``'s pin (and pins
    ``token`` / ``network`` instead of the pinned ones), every value quoted for a POSIX shell:
    they come from a server."""
    import shlex

    parts = ["mpp", "budget", "trust", origin, "--method", method]
    for payee in payees:
        parts += ["--payee", payee]
    if token is not None:
        parts += ["--token", token]
    if network is not None:
        parts += ["--network", network]
    return shlex.join(parts)


_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _payee(text: str) -> str:
    # EVM addresses are case-insensitive and pinned as methods quote them, in lower case
    # (an EIP-55 checksummed copy would be another string and stay refused).
    text = text.strip()
    return text.lower() if _HEX_ADDRESS.match(text) else text


def run_trust(inv: Invocation) -> int:
    from mpp_client.cli.accounts import open_wallet

    args, out = inv.args, inv.output
    payees = [_payee(p) for p in args.payee if p.strip()]
    if not payees and not args.token and not args.network:
        raise ConfigError("nothing to trust: give --payee ADDRESS (or --token / --network)")
    origin: str = args.origin
    with open_wallet(inv.config, with_methods=False, clock=inv.clock) as wallet:
        pin = wallet.journal.ledger().pin(origin, args.method)
        if pin is None:
            raise ConfigError(
                f"{origin} has no pin for {args.method} yet: its first payment pins what it "
                "pays, nothing to trust"
            )
        new = Pin(
            pin.payees | frozenset(payees),
            args.token or pin.token,
            args.network if args.network is not None else pin.network,
        )
        changes = [f"payee {p}" for p in payees if p not in pin.payees]
        if new.token != pin.token:
            changes.append(f"token {pin.token} -> {new.token}")
        if new.network != pin.network:
            changes.append(f"chain {pin.network} -> {new.network}")
        data: dict[str, Any] = {
            "origin": origin,
            "method": args.method,
            "changed": bool(changes),
            "payees": sorted(new.payees),
            "token": new.token,
            "network": new.network,
        }
        if not changes:
            out.result(data, f"nothing changed: {origin} ({args.method}) already trusts that")
            return ExitCode.OK
        if not args.yes:
            # A script (--json, or no terminal) never gets a question it cannot see coming:
            # it must say --yes itself.
            if out.json:
                raise ConfigError("confirm with --yes (--json never asks on the terminal)")
            if not terminal_available():
                raise ConfigError("confirm with --yes (there is no terminal to ask on)")
            question = printable(
                f"Trust {', '.join(changes)} for {origin} ({args.method})? Payments to it "
                "will no longer be refused by payee pinning"
            )
            if not ask_on_terminal(question):
                return out.fail("not trusted: the pin is unchanged", ExitCode.ERROR, "declined")
        with wallet.journal.atomic() as tx:
            # What was confirmed is a change from the pin read above: if another process
            # changed the pin since, this change was not the one confirmed.
            if tx.pin(origin, args.method) != pin:
                raise ConfigError(
                    f"the pin of {origin} ({args.method}) changed meanwhile: nothing trusted; "
                    "run the command again"
                )
            tx.set_pin(origin, args.method, new)
    out.result(data, printable(f"{origin} ({args.method}): now trusted: {'; '.join(changes)}"))
    return ExitCode.OK


# --- set ----------------------------------------------------------------------------------------


def _amount(text: str, what: str) -> Money | None:
    if text.strip().lower() == "none":
        return None
    try:
        return parse_cap(text, what)
    except ValueError as exc:
        raise ConfigError(f"{exc} (write e.g. '0.50 USD' or '1000 sat')") from None


# argparse types: a bad value is a usage error (exit 2) before the policy file is read.


def _amount_argument(text: str) -> str:
    try:
        _amount(text, "amount")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _origin_argument(text: str) -> str:
    try:
        return parse_origin(text, "origin")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scope_argument(text: str) -> str:
    # An empty scope would be dropped and the cap would apply to every payment instead.
    if not text.strip():
        raise argparse.ArgumentTypeError("cannot be empty")
    return text.strip()


def _same_slot(limit: Limit, other: Limit) -> bool:
    return all(getattr(limit, k) == getattr(other, k) for k in ("per", *_SCOPES)) and (
        limit.in_usd == other.in_usd
    )


def _removable(limit: Limit, window: str, scope: dict[str, str]) -> bool:
    if limit.per != window:
        return False
    if any(getattr(limit, k) != scope.get(k) for k in ("origin", "payee", "method", "network")):
        return False
    if "currency" in scope:
        return limit.currency == scope["currency"]
    return limit.currency in (None, USD_PEGGED)


def run_set(inv: Invocation) -> int:
    args: argparse.Namespace = inv.args
    path = inv.config.policy_path
    if args.reset:
        path.unlink(missing_ok=True)
        inv.output.result({"reset": True}, "spend policy reset to the built-in defaults")
        return ExitCode.OK
    policy = load_policy(inv.config)
    limits = list(policy.limits)
    scope = {
        k: getattr(args, f"scope_{k}") for k in _SCOPES if getattr(args, f"scope_{k}") is not None
    }
    changed: list[str] = []
    for window in _WINDOWS:
        text = getattr(args, window)
        if text is None:
            continue
        cap = _amount(text, f"--{window}")
        if cap is None:
            before = len(limits)
            limits = [lim for lim in limits if not _removable(lim, window, scope)]
            if len(limits) == before:
                raise ConfigError(f"no {window} cap with that scope to remove")
            changed.append(f"removed the {window} cap")
            continue
        slot_scope = dict(scope)
        if "currency" not in slot_scope and is_usd_cap(cap.currency):
            # Dollar caps cover the dollar stablecoins unless told otherwise: other currencies
            # would need a price to be counted in dollars.
            slot_scope["currency"] = USD_PEGGED
        try:
            new = Limit(cap, window, **slot_scope)
        except ValueError as exc:
            raise ConfigError(f"--{window}: {exc}") from None
        limits = [lim for lim in limits if not _same_slot(lim, new)] + [new]
        changed.append(f"{window} cap {format_cap(cap)}")
    updates: dict[str, Any] = {"limits": tuple(limits)}
    if args.approve_above is not None:
        updates["approve_above"] = _amount(args.approve_above, "--approve-above")
        changed.append(f"approve above {args.approve_above}")
    if args.allow_any_origin:
        updates["origins"] = None
        changed.append("any origin allowed")
    if args.allow_origin:
        origins = set(policy.origins or ()) | set(args.allow_origin)  # normalised by the type
        updates["origins"] = frozenset(origins)
        changed.append("allowed " + ", ".join(args.allow_origin))
    if not changed:
        raise ConfigError(
            "nothing to change: give a cap (--day 5USD), --approve-above, --allow-origin or --reset"
        )
    new_policy = policy.replace(**updates)
    _write(inv, new_policy)  # read back before it replaces the file (see _write)
    inv.output.result(
        {"changed": changed, "policy": str(path)},
        f"spend policy updated ({'; '.join(changed)}): {path}",
    )
    return ExitCode.OK
