"""pytest fixtures for PostgreSQL: a throwaway cluster for the session, a fresh schema per test.

Loaded by ``tests/conftest.py`` (``pytest_plugins``). Fixtures:

* ``postgres_server`` (session): the server the tests use. By default a cluster started by
  :class:`pgcluster.PostgresCluster` in a temporary directory on a free loopback port
  (``fsync=on``), stopped at the end of the session; with ``TASKLESS_TEST_POSTGRES_DSN`` set
  (a ``postgresql://`` URL of a database the tests may fill and empty), that server instead.
  The cluster starts only when a test asks for it.
* ``postgres_url``: a ``postgresql://`` URL whose ``search_path`` is a new, empty schema, so
  every test starts from nothing (dropped afterwards).
* ``restartable_postgres``: a fresh database on a second cluster of the tests' own, which the
  test may stop and start (outage tests); always a local cluster, even with
  ``TASKLESS_TEST_POSTGRES_DSN``.

PostgreSQL missing is a test failure, not a skip: ``python3 tasks.py test`` installs it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
import pytest
from pgcluster import PostgresCluster, PostgresMissing

DSN_VARIABLE = "TASKLESS_TEST_POSTGRES_DSN"


@dataclass
class PostgresServer:
    """Where the tests' PostgreSQL is; ``cluster`` is ``None`` for an external server."""

    url: str
    cluster: PostgresCluster | None = None


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (a libpq ``options`` parameter)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{DSN_VARIABLE} must be a postgresql:// URL, not {url!r}")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}', safe='')}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    external = os.environ.get(DSN_VARIABLE)
    if external:
        yield PostgresServer(external)
        return
    try:
        cluster = PostgresCluster()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.destroy()
        pytest.fail(f"could not start a PostgreSQL cluster for the tests: {exc}", pytrace=False)
    try:
        yield PostgresServer(cluster.url, cluster)
    finally:
        cluster.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_schema(postgres_server.url, schema)
    finally:
        try:
            with psycopg.connect(postgres_server.url, autocommit=True, connect_timeout=5) as conn:
                conn.execute("SET lock_timeout = '5s'")
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        except psycopg.Error:
            pass  # a test that stopped the server; the cluster goes away with the session


@pytest.fixture(scope="session")
def _restartable_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except PostgresMissing as exc:
        if os.environ.get(DSN_VARIABLE):
            pytest.skip(f"stopping and starting PostgreSQL needs a cluster of the tests' own: {exc}")
        pytest.fail(str(exc), pytrace=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def restartable_postgres(_restartable_cluster: PostgresCluster) -> Iterator[RestartableDatabase]:
    """A cluster of its own that a test may stop and start (running when the test starts;
    its ``url`` is a fresh database)."""
    cluster = _restartable_cluster
    if not cluster.running:
        cluster.start()
    database = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    yield RestartableDatabase(cluster, cluster.url.rsplit("/", 1)[0] + f"/{database}")
    if not cluster.running:
        cluster.start()


class RestartableDatabase:
    """A database on a cluster the test may stop and start."""

    def __init__(self, cluster: PostgresCluster, url: str) -> None:
        self.cluster = cluster
        self.url = url

    def stop(self) -> None:
        self.cluster.stop("fast")

    def start(self) -> None:
        self.cluster.start()
