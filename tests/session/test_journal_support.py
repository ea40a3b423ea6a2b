"""A wallet whose journal cannot hold session records (a PostgreSQL journal, for now) refuses
a session method when it joins, naming the fix, before anything can be paid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpp_client import Wallet
from mpp_client.methods.lightning.session import LightningSession
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.session import TempoSession
from mpp_client.wallet.channels import ChannelStore, SessionRecordsUnavailable
from mpp_client.wallet.journal import SqliteJournal
from tests.lightning.fake_payer import RecordingPayer


class OtherJournal:
    """A journal that is not a SqliteJournal (as PostgresJournal is), delegating to one."""

    def __init__(self, path: Path) -> None:
        self._inner = SqliteJournal(str(path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _never(invoice: str, amount: int) -> Any:
    raise AssertionError("nothing may be paid")


def methods(store: ChannelStore | None = None) -> list[Any]:
    tempo = TempoSession(
        LocalKeySigner.generate(), max_deposit=1_000, chain_id=31337,
        rpc_url="http://127.0.0.1:9", channels=store,
    )  # fmt: skip
    lightning = LightningSession(RecordingPayer(_never), store=store)
    return [tempo, lightning]


@pytest.mark.parametrize("index", [0, 1], ids=["tempo", "lightning"])
def test_a_journal_without_session_records_refuses_the_method(index: int, tmp_path: Path) -> None:
    method = methods()[index]
    with pytest.raises(SessionRecordsUnavailable, match=r"OtherJournal.*ChannelStore\(path\)"):
        Wallet([method], journal=OtherJournal(tmp_path / "j.sqlite3"))  # type: ignore[arg-type]


def test_a_store_of_their_own_works_with_any_journal(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "sessions.sqlite3")
    wallet = Wallet(methods(store), journal=OtherJournal(tmp_path / "j.sqlite3"))  # type: ignore[arg-type]
    assert all(m.channels is store if isinstance(m, TempoSession) else m.store is store
               for m in wallet.methods)  # fmt: skip


def test_reading_a_sessions_result_needs_only_the_top_level_package() -> None:
    import mpp_client
    import mpp_client.session as core

    assert mpp_client.session_of is core.session_of
    assert mpp_client.SessionStream is core.SessionStream
    assert mpp_client.SessionStreamError is core.SessionStreamError
    assert {"SessionStream", "SessionStreamError", "session_of"} <= set(mpp_client.__all__)
