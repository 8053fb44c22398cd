"""The fake serves the queue contract (enqueue, update, delete, get; sync and async) with the
job server's API semantics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.errors import ConfigurationError, JobNotFound, ValidationError
from taskless.core.models import JobState
from taskless.core.queue import AsyncQueue, Queue
from taskless.core.transport import ApiRequest
from taskless.testing import TasklessFake

START = "2024-01-01T00:00:00Z"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def fake() -> TasklessFake:
    return TasklessFake(start=START)


def test_enqueue_get_update_delete_sync(fake: TasklessFake) -> None:
    queue = fake.queue("emails")
    job = queue.enqueue("welcome", {"to": "ada"}, {"run_at": "2024-01-02T09:00:00+02:00"})
    assert job.state is JobState.SCHEDULED
    assert job.next_run_at == datetime(2024, 1, 2, 7, tzinfo=UTC)
    assert job.options.run_at is not None and job.options.run_at.utcoffset() is not None
    assert str(job.options.run_at) == "2024-01-02 09:00:00+02:00"  # the offset is kept
    got = queue.get("welcome")
    assert got is not None and got.payload == {"to": "ada"} and got.id == job.id
    updated = queue.update("welcome", options={"enabled": False})
    assert updated.state is JobState.DISABLED and updated.payload == {"to": "ada"}
    assert queue.delete("welcome") is not None
    assert queue.get("welcome") is None
    assert queue.delete("welcome") is None


def test_update_of_a_missing_job_raises_and_creates_nothing(fake: TasklessFake) -> None:
    queue = fake.queue("emails")
    with pytest.raises(JobNotFound):
        queue.update("nope", {"x": 1})
    assert fake.jobs() == []


@pytest.mark.anyio
async def test_async_queue(fake: TasklessFake) -> None:
    queue = fake.async_queue("emails")
    job = await queue.enqueue(None, {"n": 1})
    assert job.name.startswith("job_")
    assert (await queue.get(job.name)) is not None
    assert (await queue.update(job.name, {"n": 2})).payload == {"n": 2}
    assert (await queue.delete(job.name)) is not None


def test_validation_errors_name_the_field_and_store_nothing(fake: TasklessFake) -> None:
    queue = fake.queue("emails")
    with pytest.raises(ValidationError) as caught:
        queue.enqueue("bad", {}, {"run_every": "P1M-30D"})
    assert caught.value.field == "run_every"
    response = fake.handle_api(ApiRequest("PUT", "/v1/queues/emails/jobs/x", {"payload": 1}))
    assert response.status == 422
    assert response.json["error"] == {
        "code": "invalid", "message": "is required: the URL the job is delivered to",
        "field": "endpoint",
    }
    assert fake.jobs() == []


def test_enqueue_replaces_and_reschedules(fake: TasklessFake) -> None:
    queue = fake.queue("emails")
    first = queue.enqueue("digest", 1, {"run_at": "2024-01-05T00:00:00Z"})
    second = queue.enqueue("digest", 2, {"run_at": "2024-01-03T00:00:00Z"})
    assert second.id == first.id and second.payload == 2
    assert second.next_run_at == datetime(2024, 1, 3, tzinfo=UTC)
    assert [e.created for e in fake.enqueued("digest")] == [True, False]


def test_payloads_are_copied_like_on_the_wire(fake: TasklessFake) -> None:
    queue = fake.queue("emails")
    payload: dict[str, Any] = {"items": [1, 2]}
    job = queue.enqueue("copy", payload)
    payload["items"].append(3)
    job.payload["items"].append(4)
    stored = queue.get("copy")
    assert stored is not None and stored.payload == {"items": [1, 2]}


class Email(BaseModel):
    to: str


def test_typed_queue_round_trip(fake: TasklessFake) -> None:
    queue: Queue[Email] = fake.queue("emails", payload_type=Email)
    job = queue.enqueue("typed", Email(to="ada"))
    assert job.payload == Email(to="ada")


def test_queue_created_from_the_url_reaches_the_installed_fake(fake: TasklessFake) -> None:
    with fake:
        queue: AsyncQueue[Any] = AsyncQueue("emails", url="memory://")
        sync_queue: Queue[Any] = Queue("emails", url="memory://")
    other = TasklessFake(start=START)
    with fake:
        sync_queue.enqueue("a", 1)
    with other:
        sync_queue.enqueue("b", 2)  # the same queue object, the fake active now
    assert [j.name for j in fake.jobs()] == ["a"]
    assert [j.name for j in other.jobs()] == ["b"]
    assert queue.transport is not None


def test_named_memory_urls_are_separate_fakes() -> None:
    one = TasklessFake(url="memory://one")
    two = TasklessFake(url="memory://two")
    with one, two:
        Queue("q", url="memory://one").enqueue("x", 1)
        Queue("q", url="memory://two").enqueue("y", 1)
    assert [j.name for j in one.jobs()] == ["x"]
    assert [j.name for j in two.jobs()] == ["y"]


def test_memory_url_without_an_active_fake_refuses_requests() -> None:
    queue: Queue[Any] = Queue("emails", url="memory://")  # building the queue is fine
    with pytest.raises(ConfigurationError) as caught:
        queue.enqueue("lost", 1)
    message = str(caught.value)
    assert "TASKLESS_URL='memory://'" in message
    assert "for tests only" in message
    assert "taskless_fake" in message and "with TasklessFake(...)" in message
    assert ".install()" in message
    with pytest.raises(ConfigurationError):
        queue.get("lost")
    with pytest.raises(ConfigurationError, match="memory://other"):
        Queue("emails", url="memory://other").enqueue("lost", 1)


@pytest.mark.anyio
async def test_memory_url_without_an_active_fake_refuses_async_requests() -> None:
    queue: AsyncQueue[Any] = AsyncQueue("emails", url="memory://")
    with pytest.raises(ConfigurationError, match="TASKLESS_URL"):
        await queue.enqueue("lost", 1)


def test_a_queue_built_before_any_fake_reaches_each_fake_in_turn() -> None:
    queue: Queue[Any] = Queue("emails", url="memory://")
    for name in ("first", "second"):
        fresh = TasklessFake(start=START)
        with fresh:
            queue.enqueue(name, 1)
        assert [j.name for j in fresh.jobs()] == [name]
    with pytest.raises(ConfigurationError):
        queue.enqueue("after", 1)  # uninstalled again: no fake is active


def test_other_api_routes(fake: TasklessFake) -> None:
    queue = fake.queue("emails")
    for name in ("c", "a", "b"):
        queue.enqueue(name, name)
    listed = fake.handle_api(ApiRequest("GET", "/v1/queues/emails/jobs?limit=2&after=a"))
    assert [j["name"] for j in listed.json["jobs"]] == ["b", "c"]
    assert fake.handle_api(ApiRequest("GET", "/healthz")).status == 200
    assert fake.handle_api(ApiRequest("GET", "/v1/queues/emails/jobs/zz")).json["error"][
        "code"] == "not_found"
    assert fake.handle_api(ApiRequest("POST", "/v1/queues/emails/jobs/a")).status == 405
    assert fake.handle_api(ApiRequest("GET", "/v2/nothing")).status == 404
    runs = fake.handle_api(ApiRequest("GET", "/v1/queues/emails/jobs/a/runs"))
    assert runs.status == 200 and runs.json == {"runs": []}
    queue.update("a", options={"enabled": False})
    refused = fake.handle_api(ApiRequest("POST", "/v1/queues/emails/jobs/a/run"))
    assert refused.status == 422 and refused.json["error"]["field"] == "enabled"


def test_batch(fake: TasklessFake) -> None:
    endpoint = "http://127.0.0.1:8000/api/queues/emails"
    response = fake.handle_api(ApiRequest("POST", "/v1/queues/emails/jobs:batch", {"jobs": [
        {"name": "one", "payload": 1, "endpoint": endpoint},
        {"payload": 2, "endpoint": "ftp://nope"},
        {"payload": 3, "endpoint": endpoint},
    ]}))
    assert response.status == 200
    statuses = [r["status"] for r in response.json["results"]]
    assert statuses == [201, 422, 201]
    assert response.json["results"][1]["error"]["field"] == "jobs[1].endpoint"
    assert len(fake.jobs("emails")) == 2


def test_allowed_endpoints_as_in_production() -> None:
    fake = TasklessFake(allowed_endpoints=["https://app.example.com/"])
    with pytest.raises(ValidationError) as caught:
        fake.queue("emails", endpoint="https://evil.example.net/x").enqueue("x", 1)
    assert caught.value.field == "endpoint"
    fake.queue("emails", endpoint="https://app.example.com/api/queues/emails").enqueue("y", 1)


def test_nan_is_refused_as_by_an_http_client(fake: TasklessFake) -> None:
    with pytest.raises(ValueError):
        fake.queue("emails").enqueue("nan", float("nan"))
