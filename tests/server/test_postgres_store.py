"""What the PostgreSQL store does beyond the store contract: its schema, several processes
(stores with their own connections) on one database, NOTIFY wake-ups, clear failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from conftest_postgres import with_schema

from taskless.core import api, engine
from taskless.core.engine import JobRecord, Outcome
from taskless.core.errors import ConfigurationError
from taskless.core.models import JobOptions, JobState
from taskless.server.store import FinishedAttempt, StoreUnavailable, store_for_url
from taskless.server.store.postgres import SCHEMA_VERSION, PostgresStore

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8000/jobs"
LEASE = timedelta(seconds=60)


def new(name: str = "job", now: datetime = T0, **options: object) -> JobRecord:
    return engine.create_job("q", name, ENDPOINT, {"name": name}, JobOptions(**options), now)


def finished(started: JobRecord, status: int, now: datetime = T0) -> FinishedAttempt:
    outcome = Outcome(now, now, status, None if status < 300 else "failed")
    result = engine.finish_attempt(started, started, outcome)
    return FinishedAttempt(started, result.record, result.run)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(postgres_url) as the_store:
        yield the_store


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query.encode())
        return cursor.fetchall() if cursor.description else []


# -- selection and schema ---------------------------------------------------------------------


async def test_a_postgresql_url_selects_this_store(postgres_url: str) -> None:
    assert isinstance(store_for_url(postgres_url), PostgresStore)
    assert isinstance(store_for_url(postgres_url.replace("postgresql://", "postgres://")),
                      PostgresStore)


def test_messages_never_show_the_password() -> None:
    store = PostgresStore("postgresql://app:s3cret@db.example.com:6543/jobs")
    assert "s3cret" not in repr(store)
    assert store.where == "postgresql://app@db.example.com:6543/jobs"


async def test_open_creates_the_schema_and_records_its_version(postgres_url: str) -> None:
    async with PostgresStore(postgres_url):
        pass
    async with PostgresStore(postgres_url) as store:  # reopening changes nothing
        await store.modify("q", "job", lambda current: new())
    versions = sql(postgres_url, "SELECT version, upgraded_by FROM taskless_schema")
    assert [v for v, _ in versions] == list(range(1, SCHEMA_VERSION + 1))
    assert all(str(by).startswith("taskless ") for _, by in versions)
    assert sql(postgres_url, "SELECT name FROM taskless_jobs") == [("job",)]


async def test_a_newer_package_upgrades_the_schema_on_open(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(postgres_url) as store:
        await store.modify("q", "job", lambda current: new())
    from taskless.server.store import postgres

    upgrade = "ALTER TABLE taskless_jobs ADD COLUMN upgraded_note text DEFAULT 'v2'"
    monkeypatch.setattr(postgres, "_MIGRATIONS", (*postgres._MIGRATIONS, upgrade))
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    async with PostgresStore(postgres_url) as store:
        assert await store.get("q", "job") is not None  # the data survived the upgrade
    versions = sql(postgres_url, "SELECT version FROM taskless_schema ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 2))
    assert sql(postgres_url, "SELECT upgraded_note FROM taskless_jobs") == [("v2",)]


async def test_servers_starting_together_create_the_schema_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, min_connections=1) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert len(sql(postgres_url, "SELECT version FROM taskless_schema")) == SCHEMA_VERSION
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_database_from_a_newer_taskless_is_refused(postgres_url: str) -> None:
    async with PostgresStore(postgres_url):
        pass
    sql(postgres_url, "INSERT INTO taskless_schema (version, upgraded_by) VALUES (999, 'x')")
    with pytest.raises(ConfigurationError, match="newer than this taskless understands"):
        await PostgresStore(postgres_url).open()


async def test_a_search_path_without_an_existing_schema_is_a_clear_error(
    postgres_url: str,
) -> None:
    url = with_schema(postgres_url.split("?")[0], "no_such_schema")
    with pytest.raises(ConfigurationError, match="search_path"):
        await PostgresStore(url).open()


async def test_an_unreachable_database_fails_fast_with_a_clear_error() -> None:
    from pgcluster import free_port

    store = PostgresStore(f"postgresql://taskless@127.0.0.1:{free_port()}/taskless",
                          timeout=1, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL at "
                       r"postgresql://taskless@127\.0\.0\.1") as caught:
        await store.open()
    assert time.monotonic() - started < 10
    assert "\n" not in str(caught.value)  # libpq's hint lines joined into one


@pytest.mark.parametrize("url", ["postgresql://host:notaport:/x?==", "postgresql://h/db?bogus=1"])
def test_an_unparsable_url_is_a_one_line_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert message.startswith(
        "the database URL (--database or TASKLESS_DATABASE) is not a valid PostgreSQL URL: "
    )
    assert "\n" not in message


# -- several processes on one database ------------------------------------------------------


async def test_twenty_concurrent_upserts_of_one_name_make_one_job(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, min_connections=1) for _ in range(20)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        policy = api.EndpointPolicy(allow_loopback=True)
        inputs = [
            api.parse_job_input({"payload": {"n": i}, "endpoint": ENDPOINT}, policy)
            for i in range(20)
        ]

        async def upsert(store: PostgresStore, job: api.JobInput) -> None:
            await store.modify(
                "q", "same", lambda current: api.apply_put(current, "q", "same", job, T0)
            )

        await asyncio.gather(*(upsert(s, j) for s, j in zip(stores, inputs, strict=True)))
        jobs = await stores[0].list_jobs("q")
        assert len(jobs) == 1
        assert jobs[0].payload in [{"n": i} for i in range(20)]
        assert jobs[0].version == 20  # every upsert applied in turn: none lost, none failed
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_several_stores_claiming_share_out_the_due_jobs(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as first:
        await first.modify_many([(
            "q", f"j{i:03d}", lambda current, i=i: new(f"j{i:03d}")
        ) for i in range(400)])
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        async def drain(store: PostgresStore) -> list[str]:
            names: list[str] = []
            while batch := await store.claim_due(T0, 25, LEASE):
                names += [r.name for r in batch]
            return names

        shares = await asyncio.gather(*(drain(s) for s in stores))
        claimed = [name for share in shares for name in share]
        assert len(claimed) == len(set(claimed)) == 400
        assert sum(1 for share in shares if share) >= 2  # really shared, not serialised
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_an_expired_lease_is_taken_over_by_another_process(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        await a.modify("q", "job", lambda current: new())
        (first,) = await a.claim_due(T0, 10, timedelta(seconds=5))
        assert await b.claim_due(T0 + timedelta(seconds=4), 10, LEASE) == []
        # a "dies": its lease runs out and b delivers the same run again, as attempt 2
        (second,) = await b.claim_due(T0 + timedelta(seconds=5), 10, LEASE)
        assert (second.run_id, second.attempt) == (first.run_id, 2)
        late = finished(first, 200, T0 + timedelta(seconds=6))
        assert await a.record_attempts([late]) == [False]
        assert await b.record_attempts([finished(second, 200, T0 + timedelta(seconds=7))]) == [
            True
        ]
        done = await a.get("q", "job")
        assert done is not None and done.state is JobState.COMPLETED
        runs = await a.runs("q", "job")
        assert [(r.attempt, r.status) for r in runs or []] == [
            (2, "succeeded"), (1, "succeeded")
        ]


async def test_results_racing_deletes_leave_no_orphans(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        await a.modify_many([("q", f"j{i:02d}", lambda c, i=i: new(f"j{i:02d}"))
                             for i in range(60)])
        claimed = await a.claim_due(T0, 100, LEASE)
        deletes = [b.delete("q", f"j{i:02d}") for i in range(0, 60, 2)]
        results = await asyncio.gather(
            a.record_attempts([finished(r, 200) for r in claimed]), *deletes
        )
        applied = results[0]
        assert len(applied) == 60
        assert sql(
            postgres_url,
            "SELECT count(*) FROM taskless_runs WHERE job_id NOT IN (SELECT id FROM taskless_jobs)",
        ) == [(0,)]
        assert len(await a.list_jobs("q")) == 30


async def test_batches_in_opposite_orders_do_not_deadlock(postgres_url: str) -> None:
    names = [f"j{i:02d}" for i in range(30)]
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        await a.modify_many([("q", n, lambda c, n=n: new(n)) for n in names])

        def bump(current: JobRecord | None) -> JobRecord:
            assert current is not None
            return engine.patch_job(current, T0, payload={"v": current.version})

        for _ in range(5):
            results = await asyncio.gather(
                a.modify_many([("q", n, bump) for n in names]),
                b.modify_many([("q", n, bump) for n in reversed(names)]),
            )
            assert not any(isinstance(r, Exception) for batch in results for r in batch)
        assert {j.version for j in await a.list_jobs("q")} == {11}


# -- wake-ups ---------------------------------------------------------------------------------


async def test_changes_made_by_another_process_wake_the_listeners(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        heard: list[datetime | None] = []
        arrived = asyncio.Event()

        def listener(due_at: datetime | None) -> None:
            heard.append(due_at)
            arrived.set()

        a.add_listener(listener)
        due = T0 + timedelta(minutes=5)
        await b.modify("q", "job", lambda current: new(run_at=due))
        await asyncio.wait_for(arrived.wait(), 5)
        assert heard == [due]

        heard.clear()
        arrived.clear()
        await a.modify("q", "own", lambda current: new("own", run_at=due))
        await asyncio.sleep(0.3)  # its own NOTIFY comes back too, and is not counted twice
        assert heard == [due]


async def test_changes_that_make_nothing_due_wake_nobody(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        heard: list[datetime | None] = []
        a.add_listener(heard.append)
        await b.modify("q", "off", lambda current: new("off", enabled=False))
        await b.delete("q", "off")
        await asyncio.sleep(0.3)
        assert heard == []


async def test_schemas_are_separate_deployments(
    postgres_server: object, postgres_url: str
) -> None:
    base = postgres_url.split("?")[0]
    sql(base, "CREATE SCHEMA IF NOT EXISTS other_deployment")
    other_url = with_schema(base, "other_deployment")
    try:
        async with PostgresStore(postgres_url) as a, PostgresStore(other_url) as b:
            heard: list[datetime | None] = []
            a.add_listener(heard.append)
            await b.modify("q", "job", lambda current: new())
            await asyncio.sleep(0.3)
            assert heard == []
            assert await a.get("q", "job") is None
            assert await b.get("q", "job") is not None
    finally:
        sql(base, "DROP SCHEMA other_deployment CASCADE")
