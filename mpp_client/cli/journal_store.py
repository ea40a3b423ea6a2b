"""``mpp journal migrate`` and ``mpp journal copy``: where a fleet's journal lives.

``mpp journal migrate [URL]`` creates or upgrades the tables of a PostgreSQL journal (the URL,
else ``$MPP_JOURNAL_URL``, else a ``postgresql://`` URL in the config's ``journal``). It says
what it will do and does it in one transaction; on a database that already holds tables (an
older journal, another application's data) it refuses unless ``--yes`` is given.
``--dry-run`` only shows the plan. A ``PostgresJournal`` never migrates by itself.

``mpp journal copy SRC DST`` copies every entry (state, proof, receipt, fingerprint), payee,
pin and currency from one journal into an empty one: an SQLite file into PostgreSQL, or back.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mpp_client.cli.config import ConfigError
from mpp_client.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``migrate`` and ``copy`` to the ``mpp journal`` subcommands ``sub``."""
    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade a PostgreSQL journal's tables (never done silently)",
        description="Create the tables of a PostgreSQL journal a fleet shares, or upgrade them "
        "to this mpp-client's schema. On a database that already holds tables it refuses "
        "unless --yes is given: back it up first.",
    )
    migrate.add_argument(
        "url", nargs="?", help="postgresql://... (default: $MPP_JOURNAL_URL or the config)"
    )
    migrate.add_argument("--yes", action="store_true", help="alter a database already in use")
    migrate.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    migrate.set_defaults(run=run_migrate)

    copy = sub.add_parser(
        "copy",
        help="copy a journal into an empty one (SQLite to PostgreSQL or back)",
        description="Copy every entry (with its state, proof, receipt and fingerprint), payee, "
        "pin and currency of SRC into the empty journal DST. Each is an SQLite file or a "
        "postgresql:// URL (migrated first). Stop the processes writing SRC before copying.",
    )
    copy.add_argument("source", metavar="SRC")
    copy.add_argument("destination", metavar="DST")
    copy.set_defaults(run=run_copy)


def _url(inv: Invocation) -> str:
    from mpp_client.wallet.postgres import is_postgres_url

    url = inv.args.url or os.environ.get("MPP_JOURNAL_URL") or inv.config.journal_path or ""
    if not is_postgres_url(url):
        raise ConfigError(
            "mpp journal migrate needs a postgresql:// URL (argument, $MPP_JOURNAL_URL or "
            "journal in the config); an SQLite journal upgrades itself"
        )
    return url


def run_migrate(inv: Invocation) -> int:
    import psycopg
    from psycopg.rows import dict_row

    from mpp_client.errors import JournalUnavailable
    from mpp_client.wallet.postgres import shown_url
    from mpp_client.wallet.postgres_schema import migrate, plan_migration

    url = _url(inv)
    where = shown_url(url)
    try:
        with psycopg.connect(url, row_factory=dict_row, connect_timeout=10) as conn:
            plan = plan_migration(conn, where)
            conn.rollback()
            steps = [f"{version}: {what}" for version, what in plan.steps]
            data = {
                "database": where,
                "current": plan.current,
                "target": plan.target,
                "steps": steps,
                "other_tables": plan.other_tables,
                "applied": False,
            }
            if not plan.steps:
                inv.output.result(data, f"{where}: the journal is at schema {plan.target}")
                return ExitCode.OK
            if inv.args.dry_run or (plan.needs_consent and not inv.args.yes):
                text = f"{where}: would apply schema " + ", ".join(steps)
                if not inv.args.dry_run:
                    inv.output.result(data, text)
                    inv.output.error(
                        "the database already holds "
                        + (
                            f"a journal of schema {plan.current}"
                            if plan.current is not None
                            else f"{plan.other_tables} other table(s)"
                        )
                        + ": back it up, then run again with --yes (nothing was changed)"
                    )
                    return ExitCode.USAGE
                inv.output.result(data, text)
                return ExitCode.OK
            migrate(conn, where, consent=inv.args.yes)
    except psycopg.OperationalError as exc:
        raise JournalUnavailable(f"cannot reach {where}: {str(exc).splitlines()[0]}") from None
    data["applied"] = True
    inv.output.result(data, f"{where}: applied schema " + ", ".join(steps))
    return ExitCode.OK


def run_copy(inv: Invocation) -> int:
    from mpp_client.wallet.postgres import is_postgres_url, shown_url
    from mpp_client.wallet.postgres_copy import copy_journal

    def shown(target: str) -> str:
        return shown_url(target) if is_postgres_url(target) else target

    source, destination = inv.args.source, inv.args.destination
    if not is_postgres_url(source) and not os.path.exists(source):
        raise ConfigError(f"no journal file {source}")
    report = copy_journal(source, destination)
    data = {
        "source": shown(source),
        "destination": shown(destination),
        "payments": report.payments,
        "payees": report.payees,
        "pins": report.pins,
        "currencies": report.currencies,
        "channels": report.channels,
    }
    inv.output.result(
        data,
        f"copied {report.payments} payment(s), {report.pins} pin(s) from {shown(source)} "
        f"to {shown(destination)}",
    )
    return ExitCode.OK
