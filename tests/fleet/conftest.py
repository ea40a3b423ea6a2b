"""Fixtures of the fleet tests: one throwaway PostgreSQL cluster per session (initdb/pg_ctl in a
temporary directory, a free loopback port, torn down at the end) and a fresh, migrated database
per test. A machine without the server binaries FAILS these tests (run
scripts/install-postgres.sh) unless MPP_ALLOW_SKIP=1."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest

from mpp_client.wallet.postgres_schema import migrate

from .pg_cluster import PgCluster, PgNotFound

_databases = itertools.count()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    try:
        # fsync off: the disk's durability is PostgreSQL's (a fast shutdown or a killed
        # server still leaves every commit in the page cache); these tests are about what the
        # client does around commits, and a shared CI disk would dominate their time.
        cluster = PgCluster(fsync=False)
    except PgNotFound as exc:
        if os.environ.get("MPP_ALLOW_SKIP") == "1":
            pytest.skip(str(exc))
        pytest.fail(str(exc), pytrace=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def migrated(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, url, consent=False)
    return url


@pytest.fixture
def empty_url(pg: PgCluster) -> str:
    """A new schema with nothing in it (the URL selects it through ``search_path``)."""
    return pg.create_schema(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def pg_url(empty_url: str) -> str:
    """A new database holding an empty journal of the current schema."""
    return migrated(empty_url)
