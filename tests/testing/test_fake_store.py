"""The fake's store keeps what the job server keeps, the way it answers: jobs due in time
order then first come first served, run histories made afresh on each read, copies of
payloads, and delivery records as the delivery went."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from taskless.core.models import JobMeta, Run
from taskless.core.transport import ApiRequest
from taskless.testing import TasklessFake
from taskless.testing.fake import Delivery, _copy, _DueQueue
from taskless.testing.targets import DeliveryRequest, DirectTarget, _answer

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class HeapQueue:
    """What the fake kept before _DueQueue: a heap of (due, sequence number, key, token)."""

    def __init__(self) -> None:
        self.heap: list[tuple[datetime, int, Any, int]] = []
        self.seq = itertools.count()

    def push(self, due: datetime, key: Any, token: int) -> None:
        heapq.heappush(self.heap, (due, next(self.seq), key, token))

    def first(self, tokens: dict[Any, int]) -> tuple[datetime, Any] | None:
        while self.heap:
            due, _, key, token = self.heap[0]
            if tokens.get(key) == token:
                return due, key
            heapq.heappop(self.heap)
        return None


def test_jobs_come_due_as_from_a_heap() -> None:
    rng = random.Random(3)
    plus_one = timezone(timedelta(hours=1))
    times = [T0 + timedelta(seconds=s) for s in range(6)]
    times += [t.astimezone(plus_one) for t in times[:3]]  # the same instants, another offset
    keys = [("q", f"j{i}") for i in range(12)]
    for _ in range(200):
        ours, heap, tokens = _DueQueue(), HeapQueue(), {}
        taken = []
        for _ in range(rng.randrange(1, 300)):
            if rng.random() < 0.7:  # a write: a new token, and an entry when due
                key = rng.choice(keys)
                tokens[key] = tokens.get(key, 0) + 1
                due = rng.choice(times)
                ours.push(due, key, tokens[key])
                heap.push(due, key, tokens[key])
            else:  # take the first that stands (a delivery starts: its token moves on)
                found = ours.first(tokens)
                expected = heap.first(tokens)
                assert found == expected
                if found is not None:
                    assert found[0] is expected[0]  # the due time as written, offset and all
                    tokens[found[1]] += 1
                    taken.append(found)
        assert ours.first(tokens) == heap.first(tokens)


def test_a_long_run_of_jobs_due_together_keeps_its_order() -> None:
    ours, tokens = _DueQueue(), {}
    keys = [("q", f"j{i}") for i in range(1000)]
    for key in keys:
        tokens[key] = 1
        ours.push(T0, key, 1)
    order = []
    while (found := ours.first(tokens)) is not None:
        order.append(found[1])
        tokens[found[1]] += 1  # started: its entry no longer stands
        if len(order) <= 1000 and len(order) % 3 == 0:
            tokens[found[1]] += 1
            ours.push(T0, found[1], tokens[found[1]])  # and due again now, behind the others
    assert order[:1000] == keys
    assert len(order) == 1000 + 333


def test_the_run_history_is_read_afresh_as_from_the_job_servers_store() -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z", mode="direct")
    def handler(payload: Any, meta: JobMeta) -> None:
        if meta.name == "twice" and meta.attempt == 1:
            raise RuntimeError("boom")

    fake.handle("q", handler)
    queue = fake.queue("q")
    queue.enqueue("once", 1)
    queue.enqueue("twice", 2, {"retries": 1})
    fake.run_due()
    fake.advance("PT1H")
    once, twice = fake.runs("once"), fake.runs("twice")
    assert [r.status for r in once] == ["succeeded"] and [r.attempt for r in twice] == [2, 1]
    assert [r.status for r in twice] == ["succeeded", "failed"]
    again = fake.runs("twice")
    assert again == twice and again[0] is not twice[0]  # equal runs, made afresh
    for run in (*once, *twice):
        assert type(run) is Run and run.model_fields_set == set(Run.model_fields)
    twice[0].status = "changed"  # the caller's copy: the history is the job server's
    assert fake.runs("twice")[0].status == "succeeded"
    answer = fake.handle_api(ApiRequest("GET", "/v1/queues/q/jobs/twice/runs"))
    assert [r["attempt"] for r in answer.json["runs"]] == [2, 1]
    assert answer.json["runs"][1]["error"].startswith("HTTP 500")
    queue.delete("twice")
    assert fake.runs("twice") == [] and fake.runs("once") == once


def test_a_delivery_record_holds_what_went_and_came_back() -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z", mode="direct")
    fake.handle("q", lambda payload, meta: None)
    fake.queue("q").enqueue("j", {"a": [1]}, {"headers": {"X-Trace": "t"}})
    (delivery,) = fake.run_due()
    names = [f.name for f in dataclasses.fields(Delivery)]
    assert names[:3] == ["queue", "name", "run_id"] and names[-1] == "_payload"  # as built
    assert (delivery.queue, delivery.name, delivery.attempt) == ("q", "j", 1)
    assert delivery.run_id.startswith("run_") and delivery.request_headers["webhook-id"] == delivery.run_id
    assert delivery.scheduled_at == delivery.delivered_at == T0
    assert delivery.endpoint.endswith("/api/queues/q") and delivery.request_body == b""
    assert delivery.status == 200 and delivery.error is None and delivery.next_retry_at is None
    assert delivery.response_headers == {"content-type": "application/json"}
    assert delivery.response_json() == {"ok": True, "result": None}
    assert delivery.request_headers["X-Trace"] == "t" and delivery.payload == {"a": [1]}
    assert delivery.exception is None and delivery.applied and not delivery.unserved


def test_a_handler_answering_nothing_answers_as_before() -> None:
    target = DirectTarget({"q": lambda payload: None})
    request = DeliveryRequest("http://localhost/q", {"webhook-id": "run_1"}, b"", None)
    from taskless.core.envelope import Envelope

    request = dataclasses.replace(request, envelope=Envelope("q", "j", 1, T0, {"a": 1}))
    first, second = target.deliver(request), target.deliver(request)
    assert first == second == _answer(200, {"ok": True, "result": None})
    assert first.headers is not second.headers  # each its own, as the deliveries keep them


def test_copies_share_nothing() -> None:
    value = {"a": [1, {"b": [2, 3]}, "x"], "c": {"d": {}}, "e": 1.5, "f": None}
    copy = _copy(value)
    assert copy == value and copy is not value
    assert copy["a"] is not value["a"] and copy["a"][1] is not value["a"][1]
    assert copy["a"][1]["b"] is not value["a"][1]["b"] and copy["c"]["d"] is not value["c"]["d"]


def test_meta_and_payload_reach_the_handler_as_before() -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z", mode="direct")
    seen: list[tuple[Any, JobMeta]] = []
    fake.handle("q", lambda payload, meta: seen.append((payload, meta)))
    fake.queue("q").enqueue("j", {"k": "v"}, {"headers": {"X-Mixed-Case": "1"}})
    fake.run_due()
    ((payload, meta),) = seen
    assert payload == {"k": "v"}
    assert type(meta) is JobMeta and meta.model_fields_set == set(JobMeta.model_fields)
    assert (meta.queue, meta.name, meta.attempt, meta.scheduled_at) == ("q", "j", 1, T0)
    assert meta.headers["x-mixed-case"] == "1" and meta.run_id == meta.headers["webhook-id"]
    payload["k"] = "changed"  # the handler's own copy
    assert fake.deliveries()[0].payload == {"k": "v"}
