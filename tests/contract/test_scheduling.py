"""The scheduling contract: the fake and the real job server deliver the same things.

Every scenario runs against both backends (``conftest.BACKENDS``) and checks the same
expected deliveries, written as ``(name, attempt, scheduled)`` where ``scheduled`` is the
grid time in units from ``t0``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from taskless.core.errors import JobNotFound
from taskless.core.models import JobState
from taskless.core.retry import backoff_delay, jittered
from taskless.core.timeutil import format_timestamp
from taskless.core.transport import ApiRequest

from .conftest import BACKOFF, UNIT, Backend, FixedRandom

EVERY = f"PT{UNIT}S"


def at(backend: Backend, units: float) -> str:
    return format_timestamp(backend.t0 + timedelta(seconds=units * UNIT))


def units(backend: Backend, when: datetime) -> float:
    return round((when - backend.t0).total_seconds() / UNIT, 3)


def delivered(backend: Backend, queue: str | None = None) -> list[tuple[str, int, float]]:
    seen = [s for s in backend.handlers.seen if queue in (None, s.queue)]
    return sorted(
        ((s.name, s.attempt, units(backend, s.scheduled_at)) for s in seen),
        key=lambda item: (item[2], item[0], item[1]),
    )


def payloads(backend: Backend, name: str) -> list[Any]:
    return [s.payload for s in backend.handlers.seen if s.name == name]


def test_one_off_now_and_delayed(backend: Backend) -> None:
    jobs = backend.queue("jobs")
    now_job = jobs.enqueue("now", {"n": 1})
    jobs.enqueue("delayed", {"n": 2}, {"run_at": at(backend, 1)})
    backend.at(0.5)
    assert [(s.name, s.attempt) for s in backend.handlers.seen] == [("now", 1)]
    assert backend.handlers.seen[0].scheduled_at == now_job.options.run_at
    backend.at(1.5)
    assert delivered(backend)[-1] == ("delayed", 1, 1.0)
    job = jobs.get("delayed")
    assert job is not None and job.state is JobState.COMPLETED and job.next_run_at is None


def test_recurring_then_delete(backend: Backend) -> None:
    jobs = backend.queue("jobs")
    job = jobs.enqueue("tick", "t", {"run_at": at(backend, 0), "run_every": EVERY})
    assert job.next_run_at == backend.t0
    backend.at(2.5)
    assert delivered(backend) == [("tick", 1, 0.0), ("tick", 1, 1.0), ("tick", 1, 2.0)]
    assert len({s.run_id for s in backend.handlers.seen}) == 3  # one run id per occurrence
    current = jobs.get("tick")
    assert current is not None and current.next_run_at == backend.t0 + timedelta(seconds=3 * UNIT)
    assert jobs.delete("tick") is not None
    backend.at(4.5)
    assert len(backend.handlers.seen) == 3
    assert jobs.get("tick") is None


def test_retries_with_the_same_backoff(backend: Backend) -> None:
    backend.queue("flaky").enqueue("flaky", {"k": 1}, {"run_at": at(backend, 0), "retries": 5})
    backend.queue("later").enqueue("later", {"k": 2}, {"run_at": at(backend, 0)})
    backend.at(3.5)
    assert delivered(backend, "flaky") == [("flaky", 1, 0.0), ("flaky", 2, 0.0), ("flaky", 3, 0.0)]
    assert delivered(backend, "later") == [("later", 1, 0.0), ("later", 2, 0.0)]
    assert len({s.run_id for s in backend.handlers.seen if s.name == "flaky"}) == 1

    runs = backend.api(ApiRequest("GET", "/v1/queues/flaky/jobs/flaky/runs")).json["runs"]
    runs.reverse()  # oldest first
    assert [(r["attempt"], r["status"], r["statusCode"]) for r in runs] == [
        (1, "failed", 500), (2, "failed", 500), (3, "succeeded", 200)]
    rng = FixedRandom()
    expected = [jittered(backoff_delay(n, BACKOFF.base, BACKOFF.cap), rng) for n in (1, 2)]
    assert [_delay(r) for r in runs[:2]] == pytest.approx(expected, abs=1e-6)
    assert runs[2]["nextRetryAt"] is None

    later = backend.api(ApiRequest("GET", "/v1/queues/later/jobs/later/runs")).json["runs"]
    assert [(r["attempt"], r["statusCode"]) for r in reversed(later)] == [(1, 503), (2, 200)]
    assert _delay(later[-1]) == pytest.approx(1.0, abs=1e-6)  # Retry-After wins over backoff


def _delay(run: dict[str, Any]) -> float:
    finished = datetime.fromisoformat(run["finishedAt"])
    return (datetime.fromisoformat(run["nextRetryAt"]) - finished).total_seconds()


def test_disable_and_reenable(backend: Backend) -> None:
    jobs = backend.queue("jobs")
    jobs.enqueue("tick", None, {"run_at": at(backend, 0), "run_every": EVERY})
    backend.at(1.5)
    assert jobs.update("tick", options={"enabled": False}).state is JobState.DISABLED
    backend.at(3.5)
    assert delivered(backend) == [("tick", 1, 0.0), ("tick", 1, 1.0)]
    enabled = jobs.update("tick", options={"enabled": True})
    assert enabled.next_run_at == backend.t0 + timedelta(seconds=4 * UNIT)  # the next grid time
    backend.at(4.5)
    assert delivered(backend) == [("tick", 1, 0.0), ("tick", 1, 1.0), ("tick", 1, 4.0)]


def test_update(backend: Backend) -> None:
    jobs = backend.queue("jobs")
    jobs.enqueue("report", {"v": 1}, {"run_at": at(backend, 1)})
    with pytest.raises(JobNotFound):
        jobs.update("missing", {"v": 0})
    backend.at(0.5)
    jobs.update("report", {"v": 2})
    moved = jobs.update("report", options={"run_at": at(backend, 2)})
    assert moved.payload == {"v": 2} and moved.next_run_at == backend.t0 + timedelta(
        seconds=2 * UNIT)
    backend.at(2.5)
    assert delivered(backend) == [("report", 1, 2.0)]
    assert payloads(backend, "report") == [{"v": 2}]
    assert jobs.get("missing") is None


def test_reenqueue_while_scheduled(backend: Backend) -> None:
    jobs = backend.queue("jobs")
    options = {"run_at": at(backend, 0), "run_every": EVERY}
    jobs.enqueue("tick", {"v": 1}, options)
    backend.at(1.5)
    # The same recurring job again (say, at every deploy): it does not run early.
    again = jobs.enqueue("tick", {"v": 1}, options)
    assert again.next_run_at == backend.t0 + timedelta(seconds=2 * UNIT)
    backend.at(2.5)
    # Replaced by a one-off with a new payload: the schedule starts over from the new options.
    jobs.enqueue("tick", {"v": 2}, {"run_at": at(backend, 4)})
    backend.at(4.5)
    assert delivered(backend) == [
        ("tick", 1, 0.0), ("tick", 1, 1.0), ("tick", 1, 2.0), ("tick", 1, 4.0)]
    assert payloads(backend, "tick") == [{"v": 1}] * 3 + [{"v": 2}]
    final = jobs.get("tick")
    assert final is not None and final.state is JobState.COMPLETED


def test_delivery_request_headers(backend: Backend) -> None:
    from taskless import __version__

    job = backend.queue("jobs").enqueue(
        "with-headers", {"n": 1}, {"headers": {"X-Tenant": "acme", "Authorization": "Bearer t"}}
    )
    backend.at(0.5)
    (seen,) = backend.handlers.seen
    assert seen.scheduled_at == job.options.run_at
    headers = seen.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"taskless/{__version__}"
    assert headers["x-tenant"] == "acme" and headers["authorization"] == "Bearer t"
    assert headers["webhook-id"] == seen.run_id
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["webhook-timestamp"].isdigit()
    assert (headers["x-taskless-queue"], headers["x-taskless-job"],
            headers["x-taskless-attempt"]) == ("jobs", "with-headers", "1")
