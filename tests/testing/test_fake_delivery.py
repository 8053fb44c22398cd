"""The fake delivers as the job server does: on the schedule's grid, with retries and backoff,
through the job server's state machine, on a virtual clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskless.core.engine import Backoff
from taskless.core.errors import RetryLater
from taskless.core.hooks import hookimpl, registered
from taskless.core.models import JobMeta, JobState
from taskless.core.retry import backoff_delay, jittered
from taskless.testing import TasklessFake

START = "2024-01-01T00:00:00Z"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Recorder:
    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.calls: list[tuple[Any, JobMeta]] = []
        self.fail = fail
        self.error = error or RuntimeError("boom")

    def __call__(self, payload: Any, meta: JobMeta) -> str:
        self.calls.append((payload, meta))
        if len(self.calls) <= self.fail:
            raise self.error
        return "done"


@pytest.fixture
def fake() -> TasklessFake:
    return TasklessFake(start=START)


def test_weekly_job_over_a_year_in_15_minute_steps(fake: TasklessFake) -> None:
    import threading

    threads = threading.active_count()
    handler = fake.handle("weekly", Recorder())
    queue = fake.queue("weekly")
    queue.enqueue("weekly", {"k": 1}, {"runAt": "2024-01-07T06:00:00Z", "runEvery": "P1W"})
    end = datetime(2025, 1, 1, tzinfo=UTC)
    delivered = 0
    while fake.now < end:
        delivered += len(fake.advance(timedelta(minutes=15)))
    assert delivered == 52 == len(handler.calls)
    job = queue.get("weekly")
    assert job is not None and job.next_run_at == datetime(2025, 1, 5, 6, tzinfo=UTC)
    assert [meta.scheduled_at for _, meta in handler.calls][:2] == [
        datetime(2024, 1, 7, 6, tzinfo=UTC), datetime(2024, 1, 14, 6, tzinfo=UTC)]
    assert all(d.delivered_at == d.scheduled_at for d in fake.deliveries())
    assert threading.active_count() == threads  # no thread was started


def test_records_are_copies(fake: TasklessFake) -> None:
    fake.handle("q", Recorder())
    fake.queue("q").enqueue("j", {"items": [1]}, {"retries": 2})
    fake.run_due()
    enqueued = fake.enqueued("j")[0]
    enqueued.payload["items"].append(2)
    fake.deliveries("j")[0].payload["items"].append(3)
    fake.calls[0].json["payload"]["items"].append(4)
    assert fake.enqueued("j")[0].payload == {"items": [1]}
    assert fake.deliveries("j")[0].payload == {"items": [1]}
    assert fake.calls[0].json == {
        "payload": {"items": [1]}, "endpoint": "http://127.0.0.1:8000/api/queues/q",
        "options": {"retries": 2}}
    assert fake.calls[0].status == 201 and fake.calls[0].response["name"] == "j"
    assert enqueued.given_options == {"retries": 2} and enqueued.options.retries == 2


def test_recorded_answers_are_the_jobs_as_answered_then(fake: TasklessFake) -> None:
    queue = fake.queue("q")
    answered = queue.enqueue("j", {"items": [1]})
    queue.update("j", {"items": [2]}, {"headers": {"x-a": "1"}})
    assert fake.enqueued("j")[0].given_options == {}
    put, patch = fake.calls
    response = put.response
    assert response["payload"] == {"items": [1]} and response["options"]["headers"] == {}
    assert response["id"] == answered.id and response["state"] == "scheduled"
    assert response["createdAt"] == response["updatedAt"] == "2024-01-01T00:00:00Z"
    response["payload"]["items"].append(3)
    response["options"]["headers"]["x-b"] = "2"
    assert put.response["payload"] == {"items": [1]} and put.response["options"]["headers"] == {}
    assert patch.response["payload"] == {"items": [2]}
    assert patch.response["options"]["headers"] == {"x-a": "1"}
    fake.assert_enqueued("j", payload={"items": [1]}, times=1)


def test_one_big_step_delivers_every_occurrence_in_time_order(fake: TasklessFake) -> None:
    fake.handle("q", Recorder())
    queue = fake.queue("q")
    queue.enqueue("daily", "d", {"run_at": "2024-01-01T12:00:00Z", "run_every": "P1D"})
    queue.enqueue("hourly", "h", {"run_at": "2024-01-01T00:30:00Z", "run_every": "PT6H"})
    made = fake.advance("P2D")
    times = [d.delivered_at for d in made]
    assert times == sorted(times)
    assert [d.name for d in made].count("daily") == 2
    assert [d.name for d in made].count("hourly") == 8
    assert fake.now == T0 + timedelta(days=2)


def test_retries_with_the_servers_backoff(fake: TasklessFake) -> None:
    handler = fake.handle("q", Recorder(fail=2))
    fake.queue("q").enqueue("flaky", 1, {"retries": 5})
    assert [d.attempt for d in fake.run_due()] == [1]
    first = fake.deliveries()[0]
    assert first.status == 500 and first.next_retry_at is not None
    fake.advance("PT1H")
    fake.assert_delivered("flaky", attempts=[1, 2, 3], status=200)
    assert [meta.attempt for _, meta in handler.calls] == [1, 2, 3]
    run_ids = {meta.run_id for _, meta in handler.calls}
    assert len(run_ids) == 1  # one occurrence, one run id across its retries
    # Delays: the job server's backoff, jittered by the fake's seeded random source.
    deliveries = fake.deliveries()
    import random

    rng = random.Random(0)
    for n, (failed, retry) in enumerate(itertools.pairwise(deliveries), 1):
        delay = (retry.delivered_at - failed.delivered_at).total_seconds()
        expected = jittered(backoff_delay(n), rng)
        assert delay == pytest.approx(expected, abs=1e-6)
        assert backoff_delay(n) / 2 <= delay <= backoff_delay(n)
    assert fake.job("flaky", "q").state is JobState.COMPLETED  # type: ignore[union-attr]


def test_retries_exhausted_one_off_fails(fake: TasklessFake) -> None:
    fake.handle("q", Recorder(fail=100))
    fake.queue("q").enqueue("doomed", 1, {"retries": 2})
    fake.advance("PT1H")
    fake.assert_delivered("doomed", attempts=[1, 2, 3], status=500)
    job = fake.job("doomed")
    assert job is not None and job.state is JobState.FAILED and job.next_run_at is None
    assert [run.status for run in fake.runs("doomed")] == ["failed"] * 3


def test_retry_later_wins_over_backoff(fake: TasklessFake) -> None:
    fake.handle("q", Recorder(fail=1, error=RetryLater(90)))
    fake.queue("q").enqueue("later", 1)
    first = fake.run_due()[0]
    assert first.status == 503 and first.next_retry_at == T0 + timedelta(seconds=90)
    assert fake.advance(89) == []
    assert [d.attempt for d in fake.advance(1)] == [2]


def test_exact_backoff_with_a_custom_policy() -> None:
    class Top:
        def random(self) -> float:
            return 1.0

    fake = TasklessFake(start=START, backoff=Backoff(base=10, cap=25), rng=Top())
    fake.handle("q", Recorder(fail=3))
    fake.queue("q").enqueue("j", 1)
    fake.advance("PT1M")
    times = [(d.delivered_at - T0).total_seconds() for d in fake.deliveries()]
    assert times == [0, 10, 30, 55]


def test_disable_and_reenable(fake: TasklessFake) -> None:
    fake.handle("q", Recorder())
    queue = fake.queue("q")
    queue.enqueue("tick", 1, {"run_at": "2024-01-01T01:00:00Z", "run_every": "PT1H"})
    fake.advance("PT2H")  # 01:00, 02:00
    queue.update("tick", options={"enabled": False})
    fake.advance("PT3H")  # nothing while disabled
    assert len(fake.deliveries()) == 2
    job = queue.update("tick", options={"enabled": True})  # at 05:00: next grid time 06:00
    assert job.next_run_at == T0 + timedelta(hours=6)
    fake.advance("PT1H")
    assert [d.scheduled_at.hour for d in fake.deliveries()] == [1, 2, 6]


def test_update_and_delete(fake: TasklessFake) -> None:
    handler = fake.handle("q", Recorder())
    queue = fake.queue("q")
    queue.enqueue("j", "old", {"run_at": "2024-01-01T01:00:00Z"})
    queue.update("j", "new")
    queue.enqueue("gone", 1, {"run_at": "2024-01-01T01:00:00Z"})
    queue.delete("gone")
    fake.advance("PT1H")
    assert [(p, m.name) for p, m in handler.calls] == [("new", "j")]


def test_reenqueue_while_in_flight_keeps_the_new_configuration(fake: TasklessFake) -> None:
    queue = fake.queue("q")
    seen: list[int] = []

    def handler(payload: int) -> None:
        seen.append(payload)
        if payload == 1:  # re-enqueued during its own delivery, for later
            queue.enqueue("j", 2, {"run_at": "2024-01-01T02:00:00Z"})
            raise RuntimeError("and this failure must not schedule a retry")

    fake.handle("q", handler)
    queue.enqueue("j", 1)
    first = fake.run_due()[0]
    assert first.status == 500 and not first.applied and first.next_retry_at is None
    job = queue.get("j")
    assert job is not None and job.payload == 2 and job.next_run_at == T0 + timedelta(hours=2)
    fake.advance("PT3H")
    assert seen == [1, 2]


def test_a_handler_may_enqueue_jobs_due_now(fake: TasklessFake) -> None:
    queue = fake.queue("chain")
    seen: list[int] = []

    def handler(n: int) -> None:
        seen.append(n)
        if n < 3:
            queue.enqueue(f"step-{n + 1}", n + 1)

    fake.handle("chain", handler)
    queue.enqueue("step-1", 1)
    assert len(fake.run_due()) == 3
    assert seen == [1, 2, 3]


def test_runaway_loop_is_stopped() -> None:
    fake = TasklessFake(start=START, max_deliveries=50)
    queue = fake.queue("loop")
    fake.handle("loop", lambda n: queue.enqueue(None, n))
    queue.enqueue(None, 0)
    with pytest.raises(RuntimeError, match="more than 50 deliveries"):
        fake.run_due()


def test_handlers_cannot_drive_the_fake(fake: TasklessFake) -> None:
    fake.handle("q", lambda payload: fake.advance(1))
    fake.queue("q").enqueue("j", 1)
    delivery = fake.run_due()[0]
    assert delivery.status == 500 and isinstance(delivery.exception, RuntimeError)


def test_unserved_delivery_fails_like_a_refused_connection(fake: TasklessFake) -> None:
    fake.queue("q").enqueue("j", 1, {"retries": 0})
    delivery = fake.run_due()[0]
    assert delivery.status is None and delivery.unserved
    assert "nothing serves http://127.0.0.1:8000/api/queues/q" in (delivery.error or "")


def test_clock_and_inspection(fake: TasklessFake) -> None:
    queue = fake.queue("q")
    queue.enqueue("b", 1, {"run_at": "2024-01-03T00:00:00Z"})
    queue.enqueue("a", 1, {"run_at": "2024-01-02T00:00:00Z"})
    assert [s.name for s in fake.scheduled()] == ["a", "b"]
    assert fake.next_due_at == T0 + timedelta(days=1)
    with pytest.raises(ValueError, match="never goes back"):
        fake.advance_to("2023-12-31T00:00:00Z")
    fake.assert_scheduled("a", at="2024-01-02T01:00:00+01:00")
    fake.reset()
    assert fake.jobs() == [] and fake.scheduled() == []


def test_attempt_finished_hook_is_called(fake: TasklessFake) -> None:
    seen: list[tuple[str, int, int | None]] = []

    class Plugin:
        @hookimpl
        def taskless_attempt_finished(self, name: str, attempt: int, status: int | None) -> None:
            seen.append((name, attempt, status))

    fake.handle("q", Recorder(fail=1))
    fake.queue("q").enqueue("j", 1)
    with registered(Plugin()):
        fake.advance(5)
    assert seen == [("j", 1, 500), ("j", 2, 200)]


@pytest.mark.anyio
async def test_async_driving_with_async_handlers(fake: TasklessFake) -> None:
    seen: list[int] = []

    async def handler(payload: int) -> None:
        seen.append(payload)

    fake.handle("q", handler)
    queue = fake.async_queue("q")
    await queue.enqueue("a", 1)
    await queue.enqueue("b", 2, {"run_at": "2024-01-01T00:00:10Z"})
    assert len(await fake.run_due_async()) == 1
    assert len(await fake.advance_async(10)) == 1
    await fake.advance_to_async("2024-01-02T00:00:00Z")
    assert seen == [1, 2]


def test_sync_driving_runs_async_handlers_too(fake: TasklessFake) -> None:
    seen: list[int] = []

    async def handler(payload: int) -> None:
        seen.append(payload)

    fake.handle("q", handler)
    fake.queue("q").enqueue("a", 1)
    fake.run_due()
    assert seen == [1]


def test_missed_occurrences_after_a_late_enqueue_run_once(fake: TasklessFake) -> None:
    handler = fake.handle("q", Recorder())
    # run_at in the past: the latest past occurrence runs once, then the grid resumes.
    fake.queue("q").enqueue("late", 1, {"run_at": "2023-12-31T00:00:00Z", "run_every": "PT1H"})
    fake.run_due()
    assert [m.scheduled_at for _, m in handler.calls] == [T0]
    fake.advance("PT1H")
    assert len(handler.calls) == 2


def test_the_clock_stays_in_utc_when_jobs_have_offsets(fake: TasklessFake) -> None:
    fake.handle("q", Recorder())
    fake.queue("q").enqueue("j", 1, {"run_at": "2024-01-01T05:00:00+02:00"})
    delivery = fake.advance("PT12H")[0]
    assert delivery.delivered_at == datetime(2024, 1, 1, 3, tzinfo=UTC)
    assert delivery.delivered_at.utcoffset() == timedelta(0)
    assert fake.now.utcoffset() == timedelta(0)


def test_times_given_with_an_offset_are_reported_in_utc(fake: TasklessFake) -> None:
    fake.handle("emails", Recorder())
    fake.queue("emails").enqueue("a", 1, {"runAt": "2024-01-02T09:00:00-05:00"})
    [waiting] = fake.scheduled()
    due = datetime(2024, 1, 2, 14, tzinfo=UTC)
    assert (waiting.at, waiting.scheduled_at) == (due, due)
    assert waiting.at.tzinfo is UTC and waiting.scheduled_at is not None
    assert waiting.scheduled_at.tzinfo is UTC
    [delivery] = fake.advance("P2D")
    assert delivery.scheduled_at == delivery.delivered_at == due
    assert delivery.scheduled_at.tzinfo is UTC


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be 'app' or 'direct', not 'weird'"):
        TasklessFake(mode="weird")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"allowed_endpoints": "http://127.0.0.1:8000/"},
            TypeError,
            (
                "allowed_endpoints must be a list of http(s) URL prefixes, such as "
                "['https://app.example.com/'], not str 'http://127.0.0.1:8000/'"
            ),
        ),
        (
            {"allowed_endpoints": ["http://ok.example.com/", 5]},
            TypeError,
            (
                "allowed_endpoints[1] must be an http(s) URL prefix such as "
                "'https://app.example.com/', not int 5"
            ),
        ),
        (
            {"allowed_endpoints": ["nope"]},
            ValueError,
            (
                "allowed_endpoints: 'nope' is not an http(s) URL prefix such as "
                "'https://app.example.com/'"
            ),
        ),
        (
            {"backoff": 5},
            TypeError,
            (
                "backoff must be a taskless.core.engine.Backoff, such as Backoff(base=1.0, "
                "cap=3600.0), not int 5"
            ),
        ),
        (
            {"rng": 5},
            TypeError,
            (
                "rng must have a random() method returning a float in [0, 1), such as "
                "random.Random(0), not int 5"
            ),
        ),
        (
            {"settings": {"signing_secret": "x"}},
            TypeError,
            (
                "settings must be a taskless.core.settings.Settings, such as "
                "Settings.from_env().replace(signing_secret=...), not dict {'signing_secret': 'x'}"
            ),
        ),
        (
            {"signing_clock": 5},
            TypeError,
            (
                "signing_clock must be a function returning unix seconds, such as time.time, "
                "not int 5"
            ),
        ),
        (
            {"max_deliveries": "10"},
            TypeError,
            "max_deliveries must be an int, such as 1000, not str '10'",
        ),
        ({"max_deliveries": 0}, ValueError, "max_deliveries must be at least 1, not 0"),
        (
            {"lease": 120},
            TypeError,
            "lease must be a timedelta, such as timedelta(seconds=120), not int 120",
        ),
        (
            {"lease": timedelta(0)},
            ValueError,
            "lease must be longer than zero, not datetime.timedelta(0)",
        ),
        ({"url": 5}, TypeError, "url must be a memory:// URL such as 'memory://', not 5"),
        ({"url": "http://x"}, ValueError, "url: 'http://x' is not a memory:// URL"),
    ],
)
def test_wrong_arguments_are_refused_naming_them(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    fake = TasklessFake.__new__(TasklessFake)
    with pytest.raises(error) as caught:
        fake.__init__(start=START, **arguments)  # type: ignore[misc]
    assert type(caught.value) is error
    assert str(caught.value) == message
    assert repr(fake) == "TasklessFake(<not built: its __init__ failed>)"


def test_times_0_means_never_for_every_assertion(fake: TasklessFake) -> None:
    assert fake.assert_enqueued("zzz", times=0) is None
    assert fake.assert_delivered("zzz", times=0) == []
    fake.assert_not_enqueued("zzz")
    fake.assert_not_delivered("zzz")
    fake.handle("emails", Recorder())
    fake.queue("emails").enqueue("a", 1)
    assert fake.assert_enqueued("a", payload=2, times=0) is None
    with pytest.raises(AssertionError) as enqueued:
        fake.assert_enqueued("a", times=0)
    assert str(enqueued.value).splitlines()[0] == (
        "expected job 'a' not to have been enqueued, found 1."
    )
    with pytest.raises(AssertionError) as not_enqueued:
        fake.assert_not_enqueued("a")
    assert str(not_enqueued.value).splitlines()[0] == (
        "expected job 'a' not to have been enqueued, found 1."
    )
    fake.run_due()
    with pytest.raises(AssertionError) as delivered:
        fake.assert_delivered("a", times=0)
    assert str(delivered.value).splitlines()[0] == (
        "deliveries of job 'a': expected 0 attempt(s), found 1."
    )
    with pytest.raises(AssertionError) as not_delivered:
        fake.assert_not_delivered("a")
    assert str(not_delivered.value) == str(delivered.value)


@pytest.mark.parametrize(
    ("times", "error", "message"),
    [
        (-1, ValueError, "times must be 0 or more, not -1"),
        ("1", TypeError, "times must be an int such as 1 (0: never), not '1'"),
        (True, TypeError, "times must be an int such as 1 (0: never), not True"),
    ],
)
def test_times_that_is_no_count_is_refused(
    fake: TasklessFake, times: Any, error: type[Exception], message: str
) -> None:
    for check in (fake.assert_enqueued, fake.assert_delivered):
        with pytest.raises(error) as caught:
            check("a", times=times)
        assert str(caught.value) == message


def test_assert_delivered_status_is_an_int_and_says_what_the_latest_answered(
    fake: TasklessFake,
) -> None:
    fake.handle("emails", Recorder(fail=1))
    fake.queue("emails").enqueue("a", 1, {"retries": 1})
    fake.run_due()
    with pytest.raises(AssertionError) as failed:
        fake.assert_delivered("a", status=200)
    assert str(failed.value).splitlines()[0] == (
        "deliveries of job 'a': expected the latest to answer 200, it answered 500 (HTTP 500: "
        '{"error":{"code":"handler_error","message":"the handler raised RuntimeError"}}).'
    )
    fake.advance(1)
    fake.assert_delivered("a", status=200, attempts=[1, 2])
    with pytest.raises(AssertionError) as succeeded:
        fake.assert_delivered("a", status=201)
    assert str(succeeded.value).splitlines()[0] == (
        "deliveries of job 'a': expected the latest to answer 201, it answered 200."
    )
    for wrong in ("200", 200.0, True):
        with pytest.raises(TypeError) as caught:
            fake.assert_delivered("a", status=wrong)  # type: ignore[arg-type]
        assert str(caught.value) == f"status must be an int such as 200, not {wrong!r}"


def test_assert_delivered_says_when_the_latest_got_no_answer(fake: TasklessFake) -> None:
    fake.queue("emails").enqueue("a", 1, {"retries": 0})
    [delivery] = fake.run_due()
    with pytest.raises(AssertionError) as caught:
        fake.assert_delivered("a", status=200)
    assert str(caught.value).splitlines()[0] == (
        f"deliveries of job 'a': expected the latest to answer 200, it got no answer "
        f"({delivery.error})."
    )


def test_assert_not_enqueued_names_what_was_found(fake: TasklessFake) -> None:
    fake.queue("emails").enqueue("a", 1)
    fake.assert_not_enqueued(queue="other")
    fake.assert_not_enqueued("b")
    with pytest.raises(AssertionError, match=r"^expected no job in queue 'emails' to have been "
                                             r"enqueued, found 1\.\n"):
        fake.assert_not_enqueued(queue="emails")
    with pytest.raises(AssertionError, match=r"^expected no job to have been enqueued, found 1"):
        fake.assert_not_enqueued()
    with pytest.raises(AssertionError, match=r"^expected job 'a' not to have been enqueued"):
        fake.assert_not_enqueued("a")
