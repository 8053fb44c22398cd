"""The end-to-end scenarios of the sync integrations (Flask, AWS Lambda), written once.

Each test module builds its shell (a Flask app under werkzeug, a Lambda function behind the
local front) as a :class:`Handlers`, which declares the same four queues on its ``Taskless``,
and runs these scenarios against a real job server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from taskless import JobMeta, JobNotFound, RetryLater
from taskless.core.envelope import build_envelope
from taskless.core.signing import signed_headers

from .conftest import Recorder

PAYLOAD = {
    "city": "Zürich", "tag": "🚒", "sep": "a\u2028b", "price": 10.5, "n": 12345678901234567890
}


class Email(BaseModel):
    to: str


class Handlers:
    """The scenarios' queues, declared on ``taskless`` (an integration's ``Taskless``), and
    what their handlers saw.

    ``follow_up``: the ``emails`` handler enqueues ``tips:<to>`` for each ``welcome:...`` job
    (an enqueue from inside a handler). ``async_patient``: the ``patient`` handler is
    ``async def``.
    """

    def __init__(
        self, taskless: Any, *, follow_up: bool = False, async_patient: bool = False
    ) -> None:
        self.taskless = taskless
        self.emails = Recorder()
        self.exact = Recorder()
        self.failures = Recorder()
        self.patient = Recorder()

        @taskless.queue("emails")
        def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
            self.emails.add(payload, meta)
            if follow_up and meta.name.startswith("welcome:"):
                send_email.enqueue(f"tips:{payload.to}", payload)
            return {"sent": payload.to}

        @taskless.queue("exact")
        async def exact(payload: dict[str, Any], meta: JobMeta) -> None:
            self.exact.add(payload, meta)

        @taskless.queue("broken")
        def always_fails(payload: dict[str, Any], meta: JobMeta) -> None:
            self.failures.add(payload, meta)
            raise RuntimeError("this handler always fails")

        def patient(payload: dict[str, Any], meta: JobMeta) -> None:
            self.patient.add(payload, meta)
            if meta.attempt == 1:
                raise RetryLater(1)

        async def patient_async(payload: dict[str, Any], meta: JobMeta) -> None:
            patient(payload, meta)

        self.send_email = send_email
        self.exact_queue = exact
        self.always_fails = always_fails
        self.patient_queue = taskless.queue("patient")(patient_async if async_patient else patient)


def job_due_in_two_seconds_is_delivered_once_and_not_early(target: Handlers) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    job = target.send_email.enqueue("later", Email(to="ada@example.com"), {"runAt": due})
    assert job.state.value == "scheduled" and job.next_run_at == due
    target.emails.wait_for(1, timeout=6)
    target.emails.settle(quiet=0.5)
    assert len(target.emails.calls) == 1
    _, arrived_at, payload, meta = target.emails.calls[0]
    assert payload == Email(to="ada@example.com")
    assert arrived_at >= due.timestamp()
    assert (meta.attempt, meta.scheduled_at, meta.name, meta.queue) == (1, due, "later", "emails")
    done = target.send_email.get("later")
    assert done is not None and done.state.value == "completed" and done.next_run_at is None


def recurring_job_is_delivered_on_its_grid(target: Handlers) -> list[tuple[Any, ...]]:
    """Returns the first three deliveries."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    target.send_email.enqueue(
        "tick", Email(to="grid@example.com"), {"runAt": start, "runEvery": "PT1S"}
    )
    target.emails.wait_for(3, timeout=8)
    target.send_email.delete("tick")
    calls = target.emails.calls[:3]
    assert [c[3].scheduled_at for c in calls] == [start + timedelta(seconds=k) for k in range(3)]
    assert len({c[3].run_id for c in calls}) == 3
    return calls


def failing_handler_is_attempted_retries_plus_one_times(
    target: Handlers, retries: int, attempts: int
) -> None:
    target.always_fails.enqueue("doomed", {"n": 1}, {"retries": retries})
    target.failures.wait_for(attempts, timeout=10)
    target.failures.settle(quiet=0.6)
    assert [c[3].attempt for c in target.failures.calls] == list(range(1, attempts + 1))
    assert len({c[3].run_id for c in target.failures.calls}) == 1
    deadline = time.monotonic() + 5
    while (job := target.always_fails.get("doomed")) is not None and job.state.value != "failed":
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job is not None and job.state.value == "failed"


def exact_payload_through_the_job_server(target: Handlers) -> None:
    target.exact_queue.enqueue("exact", PAYLOAD)
    target.exact.wait_for(1)
    [(_, _, payload, meta)] = target.exact.calls
    assert payload == PAYLOAD
    assert type(payload["n"]) is int and type(payload["price"]) is float
    assert meta.headers["webhook-id"] == meta.run_id


def retry_later_is_honoured(target: Handlers) -> None:
    target.patient_queue.enqueue("wait", {"n": 1}, {"retries": 2})
    target.patient.wait_for(2, timeout=8)
    first, second = target.patient.calls[:2]
    assert [first[3].attempt, second[3].attempt] == [1, 2]
    assert second[0] - first[0] >= 0.95  # Retry-After: 1, not the 20 ms backoff


def tampered_delivery_is_refused_and_never_reaches_the_handler(
    target: Handlers, url: str, secret: str
) -> None:
    """``url``: where the shell is served; ``secret``: the signing secret it checks."""
    body = build_envelope("emails", "forged", 1, datetime.now(UTC), {"to": "a@b.c"})
    headers = signed_headers(body, secret, msg_id="run_forged")
    endpoint = f"{url}/api/queues/emails"
    with httpx.Client() as client:
        refused = client.post(endpoint, content=body.replace(b"a@b.c", b"x@b.c"), headers=headers)
        shouted = {k.upper(): v for k, v in headers.items()}
        accepted = client.post(endpoint, content=body, headers=shouted)
        wrong_method = client.get(endpoint)
    assert refused.status_code == 401
    assert accepted.status_code == 200
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert [c[2] for c in target.emails.calls] == [Email(to="a@b.c")]


def oversized_body_is_413_and_a_trailing_slash_is_the_route(
    target: Handlers, url: str, secret: str, *, chunked: bool = False
) -> None:
    """A 20 MiB body (the limit is 2 MiB), sent with a Content-Length or ``chunked``, is
    answered 413 ``too_large`` over a real socket, and the connection serves on; then a signed
    delivery to the route with a trailing slash reaches the handler."""
    size = 20 * 1024 * 1024
    body = b"x" * size
    content: Any = body if not chunked else (body[i : i + 65536] for i in range(0, size, 65536))
    delivery = build_envelope("emails", "slash", 1, datetime.now(UTC), {"to": "s@x.y"})
    with httpx.Client(base_url=url, timeout=30) as client:
        refused = client.post("/api/queues/emails", content=content)
        assert (refused.status_code, refused.json()["error"]["code"]) == (413, "too_large")
        accepted = client.post(
            "/api/queues/emails/", content=delivery, headers=signed_headers(delivery, secret)
        )
    assert accepted.status_code == 200, accepted.text
    assert [c[2] for c in target.emails.calls] == [Email(to="s@x.y")]


def update_and_get_against_the_real_server(target: Handlers) -> Any:
    """Returns the job ``kept`` as updated (scheduled far ahead); deleting it is left to the
    caller."""
    with pytest.raises(JobNotFound):
        target.send_email.update("nobody", options={"retries": 2})
    assert target.send_email.get("nobody") is None
    far = datetime(2099, 1, 1, tzinfo=UTC)
    target.send_email.enqueue("kept", Email(to="k@example.com"), {"runAt": far, "retries": 4})
    updated = target.send_email.update("kept", options={"retries": 2})
    assert updated.options.retries == 2 and updated.options.run_at == far
    assert updated.state.value == "scheduled" and updated.next_run_at == far
    return updated
