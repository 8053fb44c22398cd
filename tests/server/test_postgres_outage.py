"""The PostgreSQL store while its database is stopped and started again: clear, prompt
failures during the outage, a log line, and recovery without a restart of the store."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest_postgres import RestartableDatabase
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskless.core import api, engine
from taskless.core.engine import Backoff
from taskless.core.models import JobOptions, JobState
from taskless.server.dispatcher import Dispatcher, DispatcherConfig
from taskless.server.store import StoreUnavailable
from taskless.server.store.postgres import PostgresStore

from .conftest import SETTINGS, Receiver, eventually

pytestmark = pytest.mark.anyio

POLICY = api.EndpointPolicy(allow_loopback=True)

ENDPOINT = "http://127.0.0.1:8000/jobs"


def new(name: str) -> engine.JobRecord:
    return engine.create_job("q", name, ENDPOINT, {}, JobOptions(), datetime.now(UTC))


async def test_an_outage_fails_operations_promptly_and_the_store_recovers(
    restartable_postgres: RestartableDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskless.server.store.postgres")
    async with PostgresStore(restartable_postgres.url, timeout=1.0, connect_timeout=1.0) as store:
        woken: list[datetime | None] = []
        store.add_listener(woken.append)
        await store.modify("q", "before", lambda c: new("before"))
        woken.clear()

        await asyncio.to_thread(restartable_postgres.stop)
        for name in ("during-1", "during-2"):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="PostgreSQL at postgresql://"):
                await store.modify("q", name, lambda c, name=name: new(name))
            assert time.monotonic() - started < 5  # a clear error, not a hang
        with pytest.raises(StoreUnavailable):
            await store.claim_due(datetime.now(UTC), 10)
        assert any("lost the connection to PostgreSQL" in r.getMessage() for r in caplog.records)

        await asyncio.to_thread(restartable_postgres.start)
        deadline = time.monotonic() + 20
        while True:  # the pool reconnects on its own
            try:
                await store.modify("q", "after", lambda c: new("after"))
                break
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert sorted(j.name for j in await store.list_jobs("q")) == ["after", "before"]
        # the listener came back too, and told the dispatcher to look at everything again
        while None not in woken and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert None in woken
        assert any("is back" in r.getMessage() for r in caplog.records)


async def test_a_restart_between_operations_costs_no_error(
    restartable_postgres: RestartableDatabase,
) -> None:
    async with PostgresStore(restartable_postgres.url, timeout=2.0) as store:
        await store.modify("q", "a", lambda c: new("a"))
        await asyncio.to_thread(restartable_postgres.stop)
        await asyncio.to_thread(restartable_postgres.start)
        # the pooled connections all died; the store retries on a fresh one (nothing was sent)
        for name in ("b", "c", "d"):
            await store.modify("q", name, lambda c, name=name: new(name))
        assert len(await store.list_jobs("q")) == 4


async def test_a_result_is_recorded_after_a_short_outage_not_delivered_twice(
    restartable_postgres: RestartableDatabase, receiver: Receiver
) -> None:
    release = asyncio.Event()

    async def held(request: Request, n: int) -> Response:
        await release.wait()  # answers only once the database is down
        return JSONResponse({"n": n})

    receiver.behaviour = held
    config = DispatcherConfig(backoff=Backoff(0.001, 0.005), timeout=30.0,
                              lease=timedelta(seconds=60))
    async with PostgresStore(restartable_postgres.url, timeout=1.0) as store:
        job = api.parse_job_input({"payload": {}, "endpoint": receiver.endpoint,
                                   "options": {"retries": 0}}, POLICY)
        now = datetime.now(UTC)
        await store.modify("q", "job", lambda c: api.apply_put(c, "q", "job", job, now))
        async with Dispatcher(store, SETTINGS, config):
            await receiver.wait_for_calls(1)
            await asyncio.to_thread(restartable_postgres.stop)
            release.set()  # the answer arrives while the result cannot be written
            await asyncio.sleep(5)
            await asyncio.to_thread(restartable_postgres.start)

            async def completed() -> bool:
                try:
                    record = await store.get("q", "job")
                except StoreUnavailable:
                    return False
                return record is not None and record.state is JobState.COMPLETED

            await eventually(completed, timeout=20)
    assert len(receiver.calls) == 1  # recorded, not left to its lease and delivered again
