from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskless.core import engine
from taskless.core.engine import Backoff, JobRecord, Outcome
from taskless.core.errors import ValidationError
from taskless.core.models import JobOptions, JobState

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8000/jobs"


class FixedRandom:
    """random() always returns the same value: jittered(d) == d/2 + d/2 * value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


HALF = FixedRandom(0.5)  # jittered(d) == 0.75 * d


def make(now: datetime = T0, **options: Any) -> JobRecord:
    return engine.create_job("q", "job", ENDPOINT, {"n": 1}, JobOptions(**options), now)


def fail(
    record: JobRecord, now: datetime, status: int | None = 500, retry_after: float | None = None
) -> engine.Finished:
    outcome = Outcome(now, now, status, f"HTTP {status}", retry_after)
    return engine.finish_attempt(record, record, outcome, rng=HALF)


def succeed(record: JobRecord, now: datetime) -> engine.Finished:
    return engine.finish_attempt(record, record, Outcome(now, now, 200), rng=HALF)


def deliver_until_settled(record: JobRecord, status: int) -> list[JobRecord]:
    """Start and finish attempts (all answering ``status``) until the job is no longer due;
    returns the started records, one per attempt."""
    attempts: list[JobRecord] = []
    now = record.next_run_at
    assert now is not None
    while record.state is JobState.SCHEDULED and len(attempts) < 100:
        started = engine.start_attempt(record, now)
        attempts.append(started)
        finished = engine.finish_attempt(
            started, started, Outcome(now, now, status, None if status < 300 else "x"), rng=HALF
        )
        assert finished.applied
        assert finished.record is not None
        record = finished.record
        if record.next_run_at is not None:
            now = record.next_run_at
    attempts.append(record)  # the settled record last
    return attempts


# -- creating -----------------------------------------------------------------------------


def test_new_one_off_defaults_to_now() -> None:
    record = make()
    assert record.state is JobState.SCHEDULED
    assert record.options.run_at == T0
    assert record.next_run_at == T0
    assert record.scheduled_at == T0
    assert (record.occurrence, record.attempt, record.run_id, record.version) == (0, 0, None, 1)
    assert record.created_at == record.updated_at == T0


def test_run_at_keeps_its_offset() -> None:
    paris = timezone(timedelta(hours=2))
    record = make(run_at=datetime(2024, 3, 2, 9, tzinfo=paris))
    assert record.options.run_at is not None
    assert record.options.run_at.utcoffset() == timedelta(hours=2)
    assert record.next_run_at == datetime(2024, 3, 2, 7, tzinfo=UTC)


def test_disabled_job_is_not_pending() -> None:
    record = make(enabled=False)
    assert record.state is JobState.DISABLED
    assert record.next_run_at is None
    assert record.due_at is None


def test_new_recurring_job_in_the_past_runs_its_latest_occurrence_once() -> None:
    record = make(now=T0 + timedelta(hours=5, minutes=30), run_at=T0, run_every="PT1H")
    assert record.occurrence == 5
    assert record.scheduled_at == record.next_run_at == T0 + timedelta(hours=5)


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (1, 2), (5, 6)])
def test_failing_job_is_attempted_retries_plus_one_times(retries: int, attempts: int) -> None:
    started = deliver_until_settled(make(retries=retries), 500)
    final = started.pop()
    assert len(started) == attempts
    assert [s.attempt for s in started] == list(range(1, attempts + 1))
    assert len({s.run_id for s in started}) == 1  # one occurrence, one run id
    assert final.state is JobState.FAILED
    assert final.next_run_at is None
    assert final.due_at is None


def test_retry_delays_follow_the_jittered_backoff() -> None:
    record = engine.start_attempt(make(retries=5), T0)
    delays = []
    now = T0
    for _ in range(5):
        finished = engine.finish_attempt(
            record, record, Outcome(now, now, 500, "x"), backoff=Backoff(1.0, 10.0), rng=HALF
        )
        assert finished.record is not None
        assert finished.record.next_run_at is not None
        delays.append((finished.record.next_run_at - now).total_seconds())
        assert finished.run.next_retry_at == finished.record.next_run_at
        now = finished.record.next_run_at
        record = engine.start_attempt(finished.record, now)
    # 0.75 * min(10, 2**(n-1))
    assert delays == [0.75, 1.5, 3.0, 6.0, 7.5]


def test_backoff_never_overflows() -> None:
    assert Backoff(1.0, 3600.0).delay(10**9, FixedRandom(0.999999)) <= 3600.0


@pytest.mark.parametrize(
    ("base", "cap", "message"),
    [
        (-1.0, 3600.0, "the backoff base must be a finite number of seconds >= 0, not -1.0"),
        (float("nan"), 3600.0, "the backoff base must be a finite number of seconds >= 0, not nan"),
        (1.0, -5.0, "the backoff cap must be a finite number of seconds >= 0, not -5.0"),
        (1e308, float("inf"), "the backoff cap must be a finite number of seconds >= 0, not inf"),
    ],
)
def test_a_backoff_that_cannot_compute_a_delay_is_refused_when_built(
    base: float, cap: float, message: str
) -> None:
    # Not at the first failed attempt, when the result could no longer be recorded.
    with pytest.raises(ValueError) as info:
        Backoff(base, cap)
    assert str(info.value) == message


def test_a_zero_or_huge_backoff_is_accepted_and_the_delay_clamped() -> None:
    assert Backoff(0.0, 0.0).delay(3) == 0.0
    now = T0
    record = make(now, retries=1)
    started = engine.start_attempt(record, now)
    done = engine.finish_attempt(
        started, started, Outcome(now, now, 500, "x"), backoff=Backoff(1e308, 1e308), rng=HALF
    )
    assert done.record is not None and done.record.next_run_at is not None
    assert done.record.next_run_at - now == timedelta(days=366)


def test_2xx_stops_retrying() -> None:
    record = engine.start_attempt(make(retries=5), T0)
    failed = fail(record, T0)
    assert failed.record is not None
    assert failed.run.status == "failed"
    retry_at = failed.record.next_run_at
    assert retry_at is not None
    second = engine.start_attempt(failed.record, retry_at)
    assert second.attempt == 2
    assert second.run_id == record.run_id
    done = succeed(second, retry_at)
    assert done.record is not None
    assert done.record.state is JobState.COMPLETED
    assert done.record.next_run_at is None
    assert done.run.status == "succeeded"
    assert done.run.status_code == 200


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_success(status: int) -> None:
    record = engine.start_attempt(make(), T0)
    finished = engine.finish_attempt(record, record, Outcome(T0, T0, status))
    assert finished.record is not None
    assert finished.record.state is JobState.COMPLETED


@pytest.mark.parametrize("status", [None, 199, 300, 302, 404, 429, 500, 503])
def test_anything_else_fails_the_attempt(status: int | None) -> None:
    record = engine.start_attempt(make(retries=0), T0)
    finished = fail(record, T0, status)
    assert finished.record is not None
    assert finished.record.state is JobState.FAILED
    assert finished.run.status_code == status


def test_retry_after_wins_over_backoff() -> None:
    record = engine.start_attempt(make(retries=3), T0)
    finished = engine.finish_attempt(
        record, record, Outcome(T0, T0, 503, "busy", retry_after=120.0),
        backoff=Backoff(1.0, 3600.0), rng=HALF,
    )
    assert finished.record is not None
    assert finished.record.next_run_at == T0 + timedelta(seconds=120)


def test_retry_after_zero_retries_at_once_and_huge_is_clamped() -> None:
    record = engine.start_attempt(make(retries=3), T0)
    now_retry = fail(record, T0, 503, retry_after=0.0)
    assert now_retry.record is not None
    assert now_retry.record.next_run_at == T0
    far = fail(record, T0, 503, retry_after=1e300)
    assert far.record is not None
    assert far.record.next_run_at is not None
    assert far.record.next_run_at <= T0 + timedelta(days=366)


def test_retry_after_does_not_add_attempts() -> None:
    record = make(retries=1)
    now = T0
    count = 0
    while record.state is JobState.SCHEDULED:
        started = engine.start_attempt(record, now)
        count += 1
        finished = fail(started, now, 503, retry_after=5)
        assert finished.record is not None
        record = finished.record
        now = record.next_run_at or now
    assert count == 2
    assert record.state is JobState.FAILED


# -- recurring jobs -----------------------------------------------------------------------


def test_recurring_success_moves_to_the_next_grid_occurrence() -> None:
    record = engine.start_attempt(make(run_every="P1D"), T0)
    late = T0 + timedelta(minutes=7)  # the run finished late: the grid does not move
    done = succeed(record, late)
    assert done.record is not None
    assert done.record.state is JobState.SCHEDULED
    assert done.record.occurrence == 1
    assert done.record.next_run_at == done.record.scheduled_at == T0 + timedelta(days=1)
    assert (done.record.attempt, done.record.run_id) == (0, None)
    nxt = engine.start_attempt(done.record, T0 + timedelta(days=1))
    assert nxt.run_id != record.run_id


def test_recurring_failed_occurrence_moves_on_instead_of_failing_the_job() -> None:
    record = engine.start_attempt(make(run_every="PT1H", retries=0), T0)
    done = fail(record, T0)
    assert done.record is not None
    assert done.record.state is JobState.SCHEDULED
    assert done.record.next_run_at == T0 + timedelta(hours=1)


def test_recurring_grid_uses_the_schedule_rule() -> None:
    record = make(run_every="P1M-5D")
    seen = []
    for _ in range(4):
        assert record.next_run_at is not None
        seen.append(record.next_run_at)
        started = engine.start_attempt(record, record.next_run_at)
        finished = succeed(started, record.next_run_at)
        assert finished.record is not None
        record = finished.record
    assert [d.date().isoformat() for d in seen] == [
        "2024-03-01", "2024-03-27", "2024-04-26", "2024-05-27",
    ]


def test_missed_runs_run_once_then_resume_on_the_grid() -> None:
    record = make(run_every="PT1H")
    back = T0 + timedelta(hours=5, minutes=30)  # the server was down from T0 to here
    started = engine.start_attempt(record, back)
    assert started.occurrence == 5
    assert started.scheduled_at == T0 + timedelta(hours=5)
    done = succeed(started, back)
    assert done.record is not None
    assert done.record.occurrence == 6
    assert done.record.next_run_at == T0 + timedelta(hours=6)


def test_missed_occurrences_during_long_retries_collapse_too() -> None:
    record = engine.start_attempt(make(run_every="PT1M", retries=1), T0)
    retry = fail(record, T0, retry_after=600)  # retried 10 minutes later
    assert retry.record is not None
    second = engine.start_attempt(retry.record, T0 + timedelta(minutes=10))
    assert second.occurrence == 0  # a retry stays on its occurrence
    done = succeed(second, T0 + timedelta(minutes=10, seconds=5))
    assert done.record is not None
    assert done.record.occurrence == 10  # occurrences 1..10 missed: the latest runs, once
    assert done.record.next_run_at == T0 + timedelta(minutes=10)


# -- versions: re-enqueue and delete during a delivery -------------------------------------


def test_reenqueue_during_flight_is_not_overwritten() -> None:
    started = engine.start_attempt(make(retries=3), T0)
    later = T0 + timedelta(seconds=1)
    replaced = engine.replace_job(
        started, "http://127.0.0.1:8000/other", {"n": 2}, JobOptions(retries=0), later
    )
    assert replaced.version == started.version + 1
    assert replaced.id == started.id
    assert replaced.created_at == T0
    assert replaced.state is JobState.SCHEDULED
    finished = engine.finish_attempt(replaced, started, Outcome(T0, later, 500, "x"), rng=HALF)
    assert not finished.applied
    assert finished.record == replaced
    assert finished.run.attempt == 1
    assert finished.run.run_id == started.run_id


def test_success_during_flight_does_not_complete_the_new_job() -> None:
    started = engine.start_attempt(make(), T0)
    replaced = engine.replace_job(started, ENDPOINT, {"n": 2}, JobOptions(), T0)
    finished = engine.finish_attempt(replaced, started, Outcome(T0, T0, 200))
    assert not finished.applied
    assert finished.record is replaced
    assert replaced.state is JobState.SCHEDULED


def test_result_never_revives_a_deleted_job() -> None:
    started = engine.start_attempt(make(), T0)
    finished = engine.finish_attempt(None, started, Outcome(T0, T0, 200))
    assert finished.record is None
    assert not finished.applied


def test_result_of_an_expired_lease_attempt_is_stale() -> None:
    first = engine.start_attempt(make(), T0)
    lease_over = first.lease_until
    assert lease_over is not None
    second = engine.start_attempt(first, lease_over)  # the lease expired: reclaimed
    assert second.attempt == 2
    assert second.run_id == first.run_id
    stale = engine.finish_attempt(second, first, Outcome(T0, lease_over, 200))
    assert not stale.applied


def test_replace_of_a_recurring_job_continues_on_its_grid() -> None:
    record = make(run_at=T0, run_every="PT1H")
    now = T0 + timedelta(hours=2, minutes=10)
    replaced = engine.replace_job(
        record, ENDPOINT, {}, JobOptions(run_at=T0, run_every="PT1H"), now
    )
    assert replaced.next_run_at == T0 + timedelta(hours=3)
    assert replaced.occurrence == 3


def test_replace_of_a_one_off_reschedules_it() -> None:
    record = engine.start_attempt(make(), T0)
    done = succeed(record, T0)
    assert done.record is not None
    later = T0 + timedelta(hours=1)
    replaced = engine.replace_job(done.record, ENDPOINT, {}, JobOptions(), later)
    assert replaced.state is JobState.SCHEDULED
    assert replaced.next_run_at == later


# -- patch during a delivery: the result applies unless the schedule was restarted -----------


def test_patch_of_retries_during_flight_keeps_the_result() -> None:
    started = engine.start_attempt(make(retries=5), T0)
    later = T0 + timedelta(seconds=1)
    patched = engine.patch_job(started, later, options=JobOptions(retries=2))
    assert patched.version == started.version + 1
    assert patched.state is JobState.RUNNING
    assert (patched.run_id, patched.attempt) == (started.run_id, started.attempt)
    done = later + timedelta(seconds=1)
    finished = engine.finish_attempt(patched, started, Outcome(T0, done, 200))
    assert finished.applied
    assert finished.record is not None
    assert finished.record.state is JobState.COMPLETED
    assert finished.record.next_run_at is None
    assert finished.record.options.retries == 2  # the patched configuration stays
    assert finished.record.version == patched.version
    assert finished.record.updated_at == done
    assert finished.run.run_id == started.run_id
    assert finished.run.status == "succeeded"


@pytest.mark.parametrize(
    "patch",
    [
        {"options": JobOptions(headers={"x-new": "1"})},
        {"payload": {"n": 2}},
        {"endpoint": "http://127.0.0.1:9000/other"},
        {"options": JobOptions(enabled=True)},  # already enabled: nothing to restart
        {"options": JobOptions(run_every=None, retries=1)},  # the same schedule, given again
    ],
    ids=["headers", "payload", "endpoint", "enabled-again", "same-schedule"],
)
def test_patch_that_keeps_the_schedule_keeps_the_result(patch: dict[str, Any]) -> None:
    started = engine.start_attempt(make(retries=3), T0)
    patched = engine.patch_job(started, T0, **patch)
    finished = engine.finish_attempt(patched, started, Outcome(T0, T0, 200))
    assert finished.applied
    assert finished.record is not None
    assert finished.record.state is JobState.COMPLETED
    assert finished.record.payload == patched.payload
    assert finished.record.endpoint == patched.endpoint
    assert finished.record.options == patched.options


def test_lowered_retries_count_for_the_attempt_in_flight() -> None:
    started = engine.start_attempt(make(retries=5), T0)
    patched = engine.patch_job(started, T0, options=JobOptions(retries=0))
    finished = engine.finish_attempt(patched, started, Outcome(T0, T0, 500, "HTTP 500"), rng=HALF)
    assert finished.applied
    assert finished.record is not None
    assert finished.record.state is JobState.FAILED  # no retry left under the new retries
    assert finished.record.next_run_at is None
    assert finished.run.next_retry_at is None


def test_raised_retries_count_for_the_attempt_in_flight() -> None:
    started = engine.start_attempt(make(retries=0), T0)
    patched = engine.patch_job(started, T0, options=JobOptions(retries=2))
    finished = engine.finish_attempt(patched, started, Outcome(T0, T0, 500, "HTTP 500"), rng=HALF)
    assert finished.applied
    assert finished.record is not None
    assert finished.record.state is JobState.SCHEDULED
    assert finished.record.next_run_at == T0 + timedelta(seconds=0.75)  # backoff 1 s, HALF
    assert finished.record.run_id == started.run_id  # the retry keeps the run id
    assert finished.run.next_retry_at == finished.record.next_run_at


def test_patched_payload_of_a_recurring_job_moves_on_to_the_next_occurrence() -> None:
    started = engine.start_attempt(make(run_every="PT1H"), T0)
    patched = engine.patch_job(started, T0, payload={"n": 2})
    finished = engine.finish_attempt(patched, started, Outcome(T0, T0, 200))
    assert finished.applied
    assert finished.record is not None
    assert finished.record.state is JobState.SCHEDULED
    assert finished.record.occurrence == 1
    assert finished.record.next_run_at == T0 + timedelta(hours=1)
    assert finished.record.payload == {"n": 2}


@pytest.mark.parametrize(
    "options",
    [JobOptions(run_every="PT2H"), JobOptions(run_at=T0 + timedelta(days=1)),
     JobOptions(timezone="Europe/Paris")],
    ids=["run_every", "run_at", "timezone"],
)
def test_schedule_patch_during_flight_makes_the_result_stale(options: JobOptions) -> None:
    started = engine.start_attempt(make(run_every="PT1H", retries=5), T0)
    patched = engine.patch_job(started, T0, options=options)
    assert patched.state is JobState.SCHEDULED
    assert patched.run_id is None
    finished = engine.finish_attempt(patched, started, Outcome(T0, T0, 500, "x"), rng=HALF)
    assert not finished.applied
    assert finished.record is patched
    assert finished.run.run_id == started.run_id
    assert finished.run.next_retry_at is None  # nothing was scheduled by it


def test_successful_result_after_disable_leaves_the_job_disabled() -> None:
    started = engine.start_attempt(make(), T0)
    disabled = engine.patch_job(started, T0, options=JobOptions(enabled=False))
    assert disabled.state is JobState.DISABLED
    assert disabled.due_at is None
    finished = engine.finish_attempt(disabled, started, Outcome(T0, T0, 200))
    assert not finished.applied
    assert finished.record is disabled
    assert finished.run.status == "succeeded"  # the history still has it


def test_result_after_disable_and_reenable_is_stale() -> None:
    started = engine.start_attempt(make(run_every="PT1H"), T0)
    later = T0 + timedelta(minutes=10)
    disabled = engine.patch_job(started, later, options=JobOptions(enabled=False))
    enabled = engine.patch_job(disabled, later, options=JobOptions(enabled=True))
    assert enabled.state is JobState.SCHEDULED
    assert enabled.next_run_at == T0 + timedelta(hours=1)  # the next grid occurrence
    finished = engine.finish_attempt(enabled, started, Outcome(T0, later, 200))
    assert not finished.applied
    assert finished.record is enabled


def test_run_now_during_flight_keeps_the_result() -> None:
    started = engine.start_attempt(make(), T0)
    assert engine.run_now(started, T0) is started
    finished = engine.finish_attempt(started, started, Outcome(T0, T0, 200))
    assert finished.applied
    assert finished.record is not None
    assert finished.record.state is JobState.COMPLETED


def test_result_never_lands_on_a_recreated_job_of_the_same_name() -> None:
    started = engine.start_attempt(make(), T0, run_id=lambda: "run_same")
    recreated = engine.start_attempt(make(), T0, run_id=lambda: "run_same")
    assert recreated.id != started.id
    finished = engine.finish_attempt(recreated, started, Outcome(T0, T0, 200))
    assert not finished.applied
    assert finished.record is recreated


# -- patch --------------------------------------------------------------------------------


def test_patch_changes_only_what_is_given() -> None:
    record = make(run_at=T0 + timedelta(days=1), retries=5, headers={"x-a": "1"})
    patched = engine.patch_job(record, T0, options=JobOptions(retries=2))
    assert patched.options.retries == 2
    assert patched.options.headers == {"x-a": "1"}
    assert patched.options.run_at == record.options.run_at
    assert patched.next_run_at == record.next_run_at
    assert patched.payload == record.payload
    assert patched.endpoint == record.endpoint
    assert patched.version == record.version + 1


def test_patch_payload_and_endpoint() -> None:
    record = make()
    patched = engine.patch_job(record, T0, payload=[1, 2], endpoint="http://localhost/x")
    assert patched.payload == [1, 2]
    assert patched.endpoint == "http://localhost/x"
    assert patched.options == record.options


def test_disable_and_reenable_recurring_job_uses_the_next_grid_occurrence() -> None:
    record = make(run_every="PT1H")
    disabled = engine.patch_job(record, T0, options=JobOptions(enabled=False))
    assert disabled.state is JobState.DISABLED
    assert disabled.next_run_at is None
    now = T0 + timedelta(hours=3, minutes=20)
    enabled = engine.patch_job(disabled, now, options=JobOptions(enabled=True))
    assert enabled.state is JobState.SCHEDULED
    assert enabled.occurrence == 4
    assert enabled.next_run_at == T0 + timedelta(hours=4)


def test_reenabled_one_off_whose_time_passed_runs_now() -> None:
    disabled = engine.patch_job(make(), T0, options=JobOptions(enabled=False))
    now = T0 + timedelta(hours=1)
    enabled = engine.patch_job(disabled, now, options=JobOptions(enabled=True))
    assert enabled.next_run_at == now
    assert enabled.scheduled_at == T0


def test_reenabled_future_one_off_keeps_its_time() -> None:
    run_at = T0 + timedelta(days=2)
    disabled = engine.patch_job(make(run_at=run_at), T0, options=JobOptions(enabled=False))
    enabled = engine.patch_job(disabled, T0, options=JobOptions(enabled=True))
    assert enabled.next_run_at == run_at


def test_disable_during_flight_wins_over_the_result() -> None:
    started = engine.start_attempt(make(retries=5), T0)
    disabled = engine.patch_job(started, T0, options=JobOptions(enabled=False))
    assert disabled.state is JobState.DISABLED
    finished = engine.finish_attempt(disabled, started, Outcome(T0, T0, 500, "x"))
    assert not finished.applied
    assert finished.record is disabled


def test_patch_run_at_reschedules() -> None:
    record = make(run_at=T0 + timedelta(days=1))
    new_time = T0 + timedelta(days=3)
    patched = engine.patch_job(record, T0, options=JobOptions(run_at=new_time))
    assert patched.next_run_at == new_time


def test_completed_one_off_stays_completed_when_toggled() -> None:
    done = succeed(engine.start_attempt(make(), T0), T0)
    assert done.record is not None
    off = engine.patch_job(done.record, T0, options=JobOptions(enabled=False))
    on = engine.patch_job(off, T0, options=JobOptions(enabled=True))
    assert on.state is JobState.COMPLETED


# -- run now ------------------------------------------------------------------------------


def test_run_now_makes_the_pending_occurrence_due() -> None:
    record = make(run_at=T0 + timedelta(days=1))
    now_record = engine.run_now(record, T0)
    assert now_record.next_run_at == T0
    assert now_record.scheduled_at == T0 + timedelta(days=1)


def test_run_now_reruns_a_completed_job() -> None:
    done = succeed(engine.start_attempt(make(), T0), T0)
    assert done.record is not None
    later = T0 + timedelta(hours=1)
    again = engine.run_now(done.record, later)
    assert again.state is JobState.SCHEDULED
    assert again.next_run_at == later


def test_run_now_refuses_a_disabled_job() -> None:
    with pytest.raises(ValidationError) as info:
        engine.run_now(make(enabled=False), T0)
    assert info.value.field == "enabled"


def test_run_now_leaves_a_running_job_alone() -> None:
    started = engine.start_attempt(make(), T0)
    assert engine.run_now(started, T0) is started


def test_due_at_is_the_lease_while_running() -> None:
    started = engine.start_attempt(make(), T0, timedelta(seconds=30))
    assert started.state is JobState.RUNNING
    assert started.due_at == T0 + timedelta(seconds=30)


def test_records_are_immutable() -> None:
    record = make()
    with pytest.raises(AttributeError):
        record.state = JobState.FAILED  # type: ignore[misc]
    assert replace(record, attempt=3).attempt == 3


def test_ids_are_uuid4_hex() -> None:
    import uuid

    ids = {engine.new_job_id() for _ in range(200)}
    assert len(ids) == 200
    for job_id in ids:
        parsed = uuid.UUID(hex=job_id)
        assert parsed.hex == job_id and len(job_id) == 32
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    run_id = engine.new_run_id()
    assert run_id.startswith("run_") and uuid.UUID(hex=run_id[4:]).version == 4


def test_evolve_is_dataclasses_replace() -> None:
    record = engine.start_attempt(make(run_every="PT1H"), T0)
    changes: dict[str, Any] = {
        "state": JobState.SCHEDULED, "attempt": 0, "run_id": None, "lease_until": None,
        "updated_at": T0 + timedelta(seconds=1), "encrypted": {"alg": "x"},
    }
    evolved = engine._evolve(record, **changes)
    assert type(evolved) is JobRecord
    assert evolved == replace(record, **changes)
    assert engine._evolve(record) == record
    with pytest.raises(TypeError):  # as dataclasses.replace
        engine._evolve(record, colour="red")
