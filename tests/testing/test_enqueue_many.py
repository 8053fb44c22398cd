"""Queue.enqueue_many: many jobs in few requests, one result per job, bad jobs in their place
(run against the fake, which serves the job server's own API code)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core import queue as queue_module
from taskless.core.errors import ServerError, TasklessError, ValidationError
from taskless.core.hooks import hookimpl, registered
from taskless.core.models import Job
from taskless.core.queue import Queue
from taskless.core.transport import ApiRequest, ApiResponse, Transport
from taskless.testing import TasklessFake


class Email(BaseModel):
    to: str


@pytest.fixture
def fake() -> TasklessFake:
    return TasklessFake(start="2024-01-01T00:00:00Z")


def test_each_job_gets_its_result_in_order(fake: TasklessFake) -> None:
    with fake:
        queue = fake.queue("emails", defaults={"retries": 2})
        results = queue.enqueue_many([
            ("a", {"to": "a@example.com"}),
            (None, {"to": "generated@example.com"}, {"runAt": "2024-01-02T00:00:00Z"}),
            ("a", {"to": "a-again@example.com"}, {"retries": 5}),
        ])
    assert all(isinstance(r, Job) for r in results)
    jobs: list[Job[Any]] = results  # type: ignore[assignment]
    assert [j.payload for j in jobs] == [
        {"to": "a@example.com"}, {"to": "generated@example.com"}, {"to": "a-again@example.com"}
    ]
    assert jobs[0].name == jobs[2].name == "a" and jobs[1].name not in ("", "a")
    assert [j.options.retries for j in jobs] == [2, 2, 5]
    assert [c.path for c in fake.calls] == ["/v1/queues/emails/jobs:batch"]
    assert [e.created for e in fake.enqueued()] == [True, True, False]


def test_bad_jobs_take_their_place_and_sink_nothing(fake: TasklessFake) -> None:
    with fake:
        queue = fake.queue("emails", payload_type=Email)
        results = queue.enqueue_many([
            ("ok-1", Email(to="x@example.com")),
            ("bad name!", Email(to="y@example.com")),
            ("bad-payload", {"nope": 1}),
            ("bad-option", Email(to="z@example.com"), {"runEvery": "P1.5M"}),
            ("ok-2", Email(to="w@example.com")),
        ])
    good = [r.name for r in results if isinstance(r, Job)]
    assert good == ["ok-1", "ok-2"]
    errors = {i: r for i, r in enumerate(results) if isinstance(r, TasklessError)}
    assert sorted(errors) == [1, 2, 3]
    assert all(isinstance(e, ValidationError) for e in errors.values())
    assert [e.field for e in errors.values()] == [  # type: ignore[attr-defined]
        "jobs[1].name", "jobs[2].payload.to", "jobs[3].options.run_every",
    ]
    assert sorted(j.name for j in (fake.job("ok-1"), fake.job("ok-2")) if j) == ["ok-1", "ok-2"]
    assert fake.job("bad-payload") is None and fake.job("bad-option") is None


def test_refusals_of_the_job_server_keep_the_index_of_the_whole_call(
    fake: TasklessFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_module, "BATCH_SIZE", 2)
    with fake:
        queue = fake.queue("emails", endpoint="ftp://nowhere.example.com/x")
        ok = fake.queue("emails")
        jobs = [(f"j{i}", {"i": i}) for i in range(5)]
        results = queue.enqueue_many(jobs)
        fine = ok.enqueue_many(jobs)
    assert [c.path for c in fake.calls] == ["/v1/queues/emails/jobs:batch"] * 6  # 3 + 3
    assert [getattr(r, "field", None) for r in results] == [
        f"jobs[{i}].endpoint" for i in range(5)
    ]
    assert [r.name for r in fine] == ["j0", "j1", "j2", "j3", "j4"]  # type: ignore[union-attr]


def test_async_and_the_enqueued_hook(fake: TasklessFake) -> None:
    seen: list[str] = []

    class Plugin:
        @hookimpl
        def taskless_enqueued(self, queue: str, job: Job[Any]) -> None:
            seen.append(job.name)

    async def main() -> list[Job[Any] | TasklessError]:
        async with fake.async_queue("emails") as queue:
            return await queue.enqueue_many([("a", 1), ("b", 2)])

    with fake, registered(Plugin()):
        results = asyncio.run(main())
    assert [r.payload for r in results] == [1, 2]  # type: ignore[union-attr]
    assert seen == ["a", "b"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "a", "payload": 1}, "item 0 is dict"),
        (("a",), "item 0 is tuple of 1"),
        (("a", 1, None, "x"), "item 0 is tuple of 4"),
    ],
)
def test_items_that_are_not_tuples_are_a_type_error(
    fake: TasklessFake, item: Any, message: str
) -> None:
    with fake, pytest.raises(TypeError, match=message):
        fake.queue("emails").enqueue_many([item])
    assert fake.calls == []


def test_an_empty_batch_sends_nothing(fake: TasklessFake) -> None:
    with fake:
        assert fake.queue("emails").enqueue_many([]) == []
    assert fake.calls == []


class Unavailable(Transport):
    def handle(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(503, {"error": {"code": "unavailable", "message": "database is down"}})


def test_a_refused_request_raises() -> None:
    queue: Queue[Any] = Queue("emails", transport=Unavailable())
    with pytest.raises(ServerError) as caught:
        queue.enqueue_many([("a", 1)])
    assert (caught.value.status, caught.value.error_code) == (503, "unavailable")


def test_requests_stay_under_the_body_limit_and_a_job_too_big_alone_is_refused_alone(
    fake: TasklessFake,
) -> None:
    with fake:
        queue = fake.queue("emails")
        jobs: list[Any] = [(f"mid-{i}", {"s": "x" * 1200}) for i in range(1000)]
        jobs.insert(500, ("huge", {"s": "x" * 1_100_000}))
        results = queue.enqueue_many(jobs)
    huge = results[500]
    assert isinstance(huge, ValidationError) and huge.field == "jobs[500].payload"
    assert huge.reason.startswith("makes the job 1100")
    assert "a job is at most 1048565 bytes in a batch (1 MiB per request)" in huge.reason
    assert sum(isinstance(r, Job) for r in results) == 1000
    sizes = [len(json.dumps(c.json, separators=(",", ":")).encode()) for c in fake.calls]
    assert len(sizes) == 2 and max(sizes) <= queue_module.MAX_BODY_BYTES
    assert len(fake.jobs()) == 1000


def test_the_client_limit_is_the_job_servers() -> None:
    from taskless.core import api

    assert queue_module.MAX_BODY_BYTES == api.MAX_BODY_BYTES
    assert queue_module.BATCH_SIZE == api.MAX_BATCH
