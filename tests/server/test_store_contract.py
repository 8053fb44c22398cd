"""The store contract (see ``taskless/server/store/base.py``), run against every store of
``STORE_FACTORIES`` in conftest.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskless.core import api, engine
from taskless.core.engine import JobRecord, Outcome
from taskless.core.errors import JobNotFound, ValidationError
from taskless.core.models import JobOptions, JobState
from taskless.server.store import FinishedAttempt, Store

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8000/jobs"
LEASE = timedelta(seconds=60)


def new(name: str = "job", queue: str = "q", now: datetime = T0, **options: Any) -> JobRecord:
    return engine.create_job(queue, name, ENDPOINT, {"name": name}, JobOptions(**options), now)


async def put(store: Store, record: JobRecord) -> JobRecord:
    _, after = await store.modify(record.queue, record.name, lambda _current: record)
    assert after is not None
    return after


def finished(started: JobRecord, status: int, now: datetime = T0) -> FinishedAttempt:
    result = engine.finish_attempt(started, started, Outcome(now, now, status, None if status < 300 else "x"))
    return FinishedAttempt(started, result.record, result.run)


# -- jobs -------------------------------------------------------------------------------------


async def test_modify_inserts_and_get_returns_an_equal_record(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    record = new(
        run_at=datetime(2024, 3, 2, 9, 30, 0, 123456, tzinfo=paris),
        run_every="P1M-5D",
        timezone="Europe/Paris",
        headers={"x-tenant": "a"},
        retries=3,
    )
    before, after = await store.modify("q", "job", lambda current: record)
    assert before is None
    assert after == record
    got = await store.get("q", "job")
    assert got == record
    assert got is not None
    assert got.options.run_at is not None
    assert got.options.run_at.utcoffset() == timedelta(hours=2)  # the original offset


async def test_encrypted_payload_round_trips(store: Store) -> None:
    encrypted = {"alg": "A256GCM", "kid": "k", "iv": "aXY=", "data": "ZA=="}
    record = engine.create_job("q", "e", ENDPOINT, None, JobOptions(), T0, encrypted=encrypted)
    await put(store, record)
    got = await store.get("q", "e")
    assert got is not None
    assert got.encrypted == encrypted
    assert got.payload is None


async def test_payloads_keep_their_json_types(store: Store) -> None:
    payload = {"big": 2**70, "float": 10.5, "text": "héllo ✓", "list": [None, True], "n": None}
    record = engine.create_job("q", "p", ENDPOINT, payload, JobOptions(), T0)
    await put(store, record)
    got = await store.get("q", "p")
    assert got is not None
    assert got.payload == payload
    assert isinstance(got.payload["float"], float)


async def test_modify_sees_the_current_record(store: Store) -> None:
    first = await put(store, new())
    seen: list[JobRecord | None] = []

    def change(current: JobRecord | None) -> JobRecord | None:
        seen.append(current)
        assert current is not None
        return engine.patch_job(current, T0, options=JobOptions(retries=1))

    before, after = await store.modify("q", "job", change)
    assert seen == [first]
    assert before == first
    assert after is not None
    assert after.options.retries == 1
    assert (await store.get("q", "job")) == after


async def test_modify_returning_none_writes_nothing(store: Store) -> None:
    before, after = await store.modify("q", "missing", lambda current: None)
    assert (before, after) == (None, None)
    assert await store.get("q", "missing") is None


async def test_modify_that_raises_writes_nothing(store: Store) -> None:
    await put(store, new())

    def change(current: JobRecord | None) -> JobRecord:
        raise ValidationError("options.run_every", "bad")

    with pytest.raises(ValidationError):
        await store.modify("q", "job", change)
    with pytest.raises(JobNotFound):
        await store.modify(
            "q", "other",
            lambda c: api.apply_patch(c, "q", "other", api.JobPatch(), T0),
        )
    assert await store.get("q", "other") is None
    got = await store.get("q", "job")
    assert got is not None
    assert got.version == 1


async def test_queue_and_name_identify_a_job(store: Store) -> None:
    await put(store, new("a", queue="q1"))
    await put(store, new("a", queue="q2"))
    one = await store.get("q1", "a")
    two = await store.get("q2", "a")
    assert one is not None and two is not None
    assert one.id != two.id


async def test_modify_many_isolates_failures(store: Store) -> None:
    def boom(current: JobRecord | None) -> JobRecord:
        raise ValidationError("payload", "bad")

    results = await store.modify_many([
        ("q", "a", lambda c: new("a")),
        ("q", "b", boom),
        ("q", "c", lambda c: new("c")),
    ])
    assert isinstance(results[1], ValidationError)
    assert not isinstance(results[0], Exception) and results[0][0] is None
    assert not isinstance(results[2], Exception)
    assert [r.name for r in await store.list_jobs("q")] == ["a", "c"]


async def test_list_jobs_orders_and_pages_by_name(store: Store) -> None:
    for name in ["c", "a", "b", "d"]:
        await put(store, new(name))
    await put(store, new("z", queue="other"))
    assert [r.name for r in await store.list_jobs("q")] == ["a", "b", "c", "d"]
    assert [r.name for r in await store.list_jobs("q", limit=2)] == ["a", "b"]
    assert [r.name for r in await store.list_jobs("q", limit=2, after="b")] == ["c", "d"]
    assert await store.list_jobs("empty") == []


async def test_delete_removes_the_job_and_its_runs(store: Store) -> None:
    await put(store, new())
    (started,) = await store.claim_due(T0, 10, LEASE)
    await store.record_attempts([finished(started, 200)])
    assert len(await store.runs("q", "job") or []) == 1
    deleted = await store.delete("q", "job")
    assert deleted is not None and deleted.name == "job"
    assert await store.get("q", "job") is None
    assert await store.runs("q", "job") is None
    assert await store.delete("q", "job") is None
    # a new job of the same name starts with an empty history
    await put(store, new())
    assert await store.runs("q", "job") == []


# -- claiming -------------------------------------------------------------------------------


async def test_claim_due_takes_due_jobs_earliest_first(store: Store) -> None:
    await put(store, new("later", run_at=T0 + timedelta(seconds=2)))
    await put(store, new("first", run_at=T0 - timedelta(seconds=5)))
    await put(store, new("second", run_at=T0))
    await put(store, new("future", run_at=T0 + timedelta(hours=1)))
    await put(store, new("off", enabled=False))
    claimed = await store.claim_due(T0 + timedelta(seconds=2), 10, LEASE)
    assert [r.name for r in claimed] == ["first", "second", "later"]
    for record in claimed:
        assert record.state is JobState.RUNNING
        assert record.attempt == 1
        assert record.run_id
        assert record.lease_until == T0 + timedelta(seconds=2) + LEASE
        assert await store.get("q", record.name) == record


async def test_claim_due_respects_the_limit(store: Store) -> None:
    for i in range(5):
        await put(store, new(f"j{i}"))
    assert len(await store.claim_due(T0, 3, LEASE)) == 3
    assert len(await store.claim_due(T0, 3, LEASE)) == 2
    assert await store.claim_due(T0, 3, LEASE) == []


async def test_claimed_jobs_are_not_claimed_again_until_the_lease_expires(store: Store) -> None:
    await put(store, new())
    (first,) = await store.claim_due(T0, 10, LEASE)
    assert await store.claim_due(T0 + LEASE - timedelta(microseconds=1), 10, LEASE) == []
    (again,) = await store.claim_due(T0 + LEASE, 10, LEASE)
    assert again.attempt == 2
    assert again.run_id == first.run_id  # the same occurrence


async def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    for i in range(50):
        await put(store, new(f"j{i:02d}"))
    batches = await asyncio.gather(*(store.claim_due(T0, 20, LEASE) for _ in range(5)))
    names = [r.name for batch in batches for r in batch]
    assert len(names) == len(set(names)) == 50


async def test_claim_collapses_missed_occurrences(store: Store) -> None:
    await put(store, new(run_every="PT1H"))
    (started,) = await store.claim_due(T0 + timedelta(hours=3, minutes=1), 10, LEASE)
    assert started.occurrence == 3
    assert started.scheduled_at == T0 + timedelta(hours=3)


# -- recording --------------------------------------------------------------------------------


async def test_record_attempts_applies_results_and_keeps_history(store: Store) -> None:
    await put(store, new(retries=2))
    (started,) = await store.claim_due(T0, 10, LEASE)
    attempt = finished(started, 500)
    assert await store.record_attempts([attempt]) == [True]
    stored = await store.get("q", "job")
    assert stored == attempt.record
    assert stored is not None and stored.state is JobState.SCHEDULED
    runs = await store.runs("q", "job")
    assert runs == [attempt.run]


async def test_a_stale_result_only_goes_to_the_history(store: Store) -> None:
    await put(store, new())
    (started,) = await store.claim_due(T0, 10, LEASE)
    replaced = engine.replace_job(started, ENDPOINT, {"v": 2}, JobOptions(), T0)
    await store.modify("q", "job", lambda current: replaced)
    attempt = finished(started, 200)
    assert await store.record_attempts([attempt]) == [False]
    assert await store.get("q", "job") == replaced
    assert (await store.runs("q", "job") or [])[:1] == [attempt.run]


def refinishable(started: JobRecord, status: int, now: datetime = T0) -> FinishedAttempt:
    """As the dispatcher records an attempt: with ``finish`` for a job changed meanwhile."""
    outcome = Outcome(now, now, status, None if status < 300 else "x")
    result = engine.finish_attempt(started, started, outcome)

    def finish(current: JobRecord) -> engine.Finished:
        return engine.finish_attempt(current, started, outcome)

    return FinishedAttempt(started, result.record, result.run, finish)


async def patch(store: Store, name: str, **changes: Any) -> JobRecord:
    def change(current: JobRecord | None) -> JobRecord:
        assert current is not None
        return engine.patch_job(current, T0, **changes)

    _, after = await store.modify("q", name, change)
    assert after is not None
    return after


async def test_a_result_survives_a_patch_that_keeps_the_schedule(store: Store) -> None:
    await put(store, new(retries=5))
    (started,) = await store.claim_due(T0, 10, LEASE)
    patched = await patch(store, "job", payload={"v": 2}, options=JobOptions(retries=0))
    attempt = refinishable(started, 500)
    assert attempt.record is not None and attempt.record.state is JobState.SCHEDULED
    assert await store.record_attempts([attempt]) == [True]
    stored = await store.get("q", "job")
    assert stored is not None
    assert stored.state is JobState.FAILED  # judged with retries=0, the patched value
    assert stored.payload == {"v": 2}
    assert stored.options.retries == 0
    assert stored.version == patched.version
    assert await store.next_due_at() is None
    runs = await store.runs("q", "job")
    assert runs is not None and len(runs) == 1
    assert runs[0].next_retry_at is None  # not the retry computed before the patch


async def test_a_patched_job_stays_stale_without_finish(store: Store) -> None:
    await put(store, new())
    (started,) = await store.claim_due(T0, 10, LEASE)
    patched = await patch(store, "job", payload={"v": 2})
    assert await store.record_attempts([finished(started, 200)]) == [False]
    assert await store.get("q", "job") == patched


async def test_finish_still_refuses_a_rescheduled_or_disabled_job(store: Store) -> None:
    await put(store, new("a"))
    await put(store, new("b"))
    claimed = {r.name: r for r in await store.claim_due(T0, 10, LEASE)}
    rescheduled = await patch(store, "a", options=JobOptions(run_every="PT1H"))
    disabled = await patch(store, "b", options=JobOptions(enabled=False))
    attempts = [refinishable(claimed["a"], 200), refinishable(claimed["b"], 500)]
    assert await store.record_attempts(attempts) == [False, False]
    assert await store.get("q", "a") == rescheduled
    assert await store.get("q", "b") == disabled
    assert disabled.state is JobState.DISABLED and disabled.due_at is None
    runs = await store.runs("q", "b")
    assert runs is not None
    assert [(r.status, r.next_retry_at) for r in runs] == [("failed", None)]

async def test_a_result_for_an_expired_lease_is_stale(store: Store) -> None:
    await put(store, new())
    (first,) = await store.claim_due(T0, 10, LEASE)
    (second,) = await store.claim_due(T0 + LEASE, 10, LEASE)
    assert await store.record_attempts([finished(first, 200)]) == [False]
    assert await store.get("q", "job") == second
    assert await store.record_attempts([finished(second, 200)]) == [True]


async def test_a_result_never_revives_a_deleted_job(store: Store) -> None:
    await put(store, new())
    (started,) = await store.claim_due(T0, 10, LEASE)
    await store.delete("q", "job")
    assert await store.record_attempts([finished(started, 200)]) == [False]
    assert await store.get("q", "job") is None
    assert await store.runs("q", "job") is None
    assert await store.list_jobs("q") == []


async def test_record_many_attempts_in_one_batch(store: Store) -> None:
    for i in range(300):
        await put(store, new(f"j{i:03d}"))
    claimed = await store.claim_due(T0, 300, LEASE)
    assert len(claimed) == 300
    applied = await store.record_attempts([finished(r, 200) for r in claimed])
    assert applied == [True] * 300
    assert all(r.state is JobState.COMPLETED for r in await store.list_jobs("q", limit=1000))
    assert await store.next_due_at() is None


async def test_runs_are_newest_first_and_pruned(store: Store) -> None:
    store.history_limit = 3
    await put(store, new(retries=10))
    now = T0
    for _ in range(5):
        (started,) = await store.claim_due(now, 10, LEASE)
        attempt = finished(started, 500, now)
        await store.record_attempts([attempt])
        assert attempt.record is not None and attempt.record.next_run_at is not None
        now = attempt.record.next_run_at
    runs = await store.runs("q", "job")
    assert runs is not None
    assert [r.attempt for r in runs] == [5, 4, 3]
    assert [r.attempt for r in await store.runs("q", "job", limit=2) or []] == [5, 4]


# -- due times and wake-ups -------------------------------------------------------------------


async def test_next_due_at(store: Store) -> None:
    assert await store.next_due_at() is None
    await put(store, new("a", run_at=T0 + timedelta(hours=1)))
    await put(store, new("b", run_at=T0 + timedelta(minutes=1)))
    await put(store, new("off", enabled=False))
    assert await store.next_due_at() == T0 + timedelta(minutes=1)
    (started,) = await store.claim_due(T0 + timedelta(minutes=1), 10, LEASE)
    assert await store.next_due_at() == min(T0 + timedelta(hours=1), started.lease_until)  # type: ignore[type-var]


async def test_listeners_hear_about_changes(store: Store) -> None:
    heard: list[datetime | None] = []
    store.add_listener(heard.append)
    await put(store, new(run_at=T0 + timedelta(minutes=1)))
    assert heard == [T0 + timedelta(minutes=1)]
    (started,) = await store.claim_due(T0 + timedelta(minutes=1), 10, LEASE)
    heard.clear()
    await store.record_attempts([finished(started, 500, T0 + timedelta(minutes=1))])
    assert len(heard) == 1 and heard[0] is not None
    store.remove_listener(heard.append)
    await put(store, new("other"))
    assert len(heard) == 1
