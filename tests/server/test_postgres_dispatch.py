"""Dispatchers over the PostgreSQL store, in process: NOTIFY wake-ups from another process's
enqueue, several dispatchers sharing one database, redelivery after a lost lease."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskless.core import api
from taskless.core.engine import Backoff, JobRecord
from taskless.core.models import JobState
from taskless.server.dispatcher import Dispatcher, DispatcherConfig
from taskless.server.store import Store
from taskless.server.store.postgres import PostgresStore

from .conftest import SETTINGS, Receiver, eventually

pytestmark = pytest.mark.anyio

FAST = DispatcherConfig(backoff=Backoff(0.001, 0.005), timeout=5.0)
POLICY = api.EndpointPolicy(allow_loopback=True)


async def enqueue(
    store: Store, endpoint: str, name: str = "job", **options: Any
) -> JobRecord:
    job = api.parse_job_input(
        {"payload": {"n": name}, "endpoint": endpoint, "options": options}, POLICY
    )
    now = datetime.now(UTC)
    _, after = await store.modify("q", name, lambda c: api.apply_put(c, "q", name, job, now))
    assert after is not None
    return after


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database: as two job server processes would have."""
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        yield a, b


def jobs_of(receiver: Receiver) -> list[str]:
    return [call.headers["x-taskless-job"] for call in receiver.calls]


async def test_an_enqueue_elsewhere_wakes_an_idle_dispatcher(
    receiver: Receiver, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    a, b = stores
    async with Dispatcher(a, SETTINGS, FAST):
        await asyncio.sleep(0.2)  # nothing is due: the dispatcher sleeps with no deadline
        started = time.monotonic()
        await enqueue(b, receiver.endpoint)  # another process enqueues
        await receiver.wait_for_calls(1, timeout=5)
        assert time.monotonic() - started < 2  # woken by NOTIFY, not by a poll
        later = datetime.now(UTC) + timedelta(seconds=1)
        await enqueue(b, receiver.endpoint, name="later", runAt=later.isoformat())
        await receiver.wait_for_calls(2, timeout=5)
        assert receiver.calls[1].at - started >= 0.9


async def test_two_dispatchers_deliver_every_job_once(
    receiver: Receiver, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    a, b = stores
    names = [f"j{i:03d}" for i in range(300)]
    due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    config = DispatcherConfig(backoff=Backoff(0.001, 0.005), timeout=5.0, batch_size=32,
                              concurrency=8)
    async with Dispatcher(a, SETTINGS, config), Dispatcher(b, SETTINGS, config):
        await a.modify_many([
            ("q", name, lambda c, name=name: api.apply_put(
                c, "q", name,
                api.parse_job_input({"payload": {}, "endpoint": receiver.endpoint,
                                     "options": {"runAt": due}}, POLICY),
                datetime.now(UTC),
            ))
            for name in names
        ])
        await receiver.wait_for_calls(300, timeout=30)

        async def all_completed() -> bool:
            jobs = await a.list_jobs("q", limit=1000)
            return all(job.state is JobState.COMPLETED for job in jobs)

        await eventually(all_completed)
    counts = Counter(jobs_of(receiver))
    assert sorted(counts) == names
    assert set(counts.values()) == {1}


async def test_a_lost_lease_is_redelivered_by_another_dispatcher(
    receiver: Receiver, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    a, b = stores
    await enqueue(a, receiver.endpoint, retries=0)
    # what a process that crashed mid-delivery leaves behind: a claim with a lease, no result
    (lost,) = await a.claim_due(datetime.now(UTC), 10, timedelta(seconds=1))
    async with Dispatcher(b, SETTINGS, FAST):
        await receiver.wait_for_calls(1, timeout=10)

        async def completed() -> JobRecord | None:
            job = await b.get("q", "job")
            return job if job is not None and job.state is JobState.COMPLETED else None

        await eventually(completed)
    (call,) = receiver.calls
    assert call.headers["webhook-id"] == lost.run_id  # the same run: handlers can deduplicate
    assert call.headers["x-taskless-attempt"] == "2"
    assert json.loads(call.body)["attempt"] == 2
    runs = await b.runs("q", "job")
    assert [(r.attempt, r.status) for r in runs or []] == [(2, "succeeded")]
