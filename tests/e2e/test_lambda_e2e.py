"""End to end: a real job server delivers to the Lambda entry point behind the local HTTP front
(``taskless.testing.lambda_local``), once per event source it plays, over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from taskless import JobMeta, JobNotFound, Queue, RetryLater
from taskless.core.envelope import build_envelope
from taskless.core.signing import signed_headers
from taskless.integrations.aws_lambda import Taskless
from taskless.testing.lambda_local import SOURCES, LambdaFront

from .conftest import JobServer, Recorder

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = {
    "city": "Zürich", "tag": "🚒", "sep": "a\u2028b", "price": 10.5, "n": 12345678901234567890
}
#: API Gateway stages in the URL for the sources that have them (the handler must remove them).
STAGES = {"apigw-rest": "prod", "apigw-http": "live"}


class Email(BaseModel):
    to: str


class Function:
    """A Lambda function's code (``taskless = Taskless()``, queues, ``handler``) behind a local
    front of one event source."""

    def __init__(self, job_server: JobServer, source: str) -> None:
        # The front's URL is the function's public URL (TASKLESS_BASE_URL), so it comes first.
        self.front = LambdaFront(
            lambda event, context: self.handler(event, context), source, stage=STAGES.get(source)
        )
        self.settings = job_server.settings.replace(url=job_server.url, base_url=self.front.url)
        self.taskless = Taskless(settings=self.settings)
        self.handler = self.taskless.handler  # the function's entry point
        self.emails = Recorder()
        self.exact = Recorder()
        self.failures = Recorder()
        self.patient = Recorder()

        @self.taskless.queue("emails")
        def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
            self.emails.add(payload, meta)
            if meta.name.startswith("welcome:"):  # enqueue from inside a handler
                send_email.enqueue(f"tips:{payload.to}", payload)
            return {"sent": payload.to}

        @self.taskless.queue("exact")
        async def exact(payload: dict[str, Any], meta: JobMeta) -> None:
            self.exact.add(payload, meta)

        @self.taskless.queue("broken")
        def always_fails(payload: dict[str, Any], meta: JobMeta) -> None:
            self.failures.add(payload, meta)
            raise RuntimeError("this handler always fails")

        @self.taskless.queue("patient")
        async def patient(payload: dict[str, Any], meta: JobMeta) -> None:
            self.patient.add(payload, meta)
            if meta.attempt == 1:
                raise RetryLater(1)

        self.send_email = send_email
        self.exact_queue = exact
        self.always_fails = always_fails
        self.patient_queue = patient
        self.front.start()


@pytest.fixture(params=SOURCES)
def function(request: pytest.FixtureRequest, job_server: JobServer) -> Iterator[Function]:
    function = Function(job_server, request.param)
    yield function
    function.front.stop()
    function.taskless.close()


#: The timing scenarios run on two sources; the others on every source.
timed = pytest.mark.parametrize("function", ["apigw-rest", "function-url"], indirect=True)


@timed
def test_job_due_in_two_seconds_is_delivered_once_and_not_early(function: Function) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    job = function.send_email.enqueue("later", Email(to="ada@example.com"), {"runAt": due})
    assert job.state.value == "scheduled" and job.next_run_at == due
    function.emails.wait_for(1, timeout=6)
    function.emails.settle(quiet=0.5)
    assert len(function.emails.calls) == 1
    _, arrived_at, payload, meta = function.emails.calls[0]
    assert payload == Email(to="ada@example.com")
    assert arrived_at >= due.timestamp()
    assert (meta.attempt, meta.scheduled_at, meta.name, meta.queue) == (1, due, "later", "emails")
    done = function.send_email.get("later")
    assert done is not None and done.state.value == "completed" and done.next_run_at is None


@timed
def test_recurring_job_is_delivered_on_its_grid(function: Function) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    function.send_email.enqueue(
        "tick", Email(to="grid@example.com"), {"runAt": start, "runEvery": "PT1S"}
    )
    function.emails.wait_for(3, timeout=8)
    function.send_email.delete("tick")
    calls = function.emails.calls[:3]
    assert [c[3].scheduled_at for c in calls] == [start + timedelta(seconds=k) for k in range(3)]
    assert len({c[3].run_id for c in calls}) == 3


def test_exact_payload_through_the_job_server(function: Function) -> None:
    function.exact_queue.enqueue("exact", PAYLOAD)
    function.exact.wait_for(1)
    [(_, _, payload, meta)] = function.exact.calls
    assert payload == PAYLOAD
    assert type(payload["n"]) is int and type(payload["price"]) is float
    assert meta.headers["webhook-id"] == meta.run_id


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (2, 3)])
def test_failing_handler_is_attempted_retries_plus_one_times(
    function: Function, retries: int, attempts: int
) -> None:
    function.always_fails.enqueue("doomed", {"n": 1}, {"retries": retries})
    function.failures.wait_for(attempts, timeout=10)
    function.failures.settle(quiet=0.6)
    assert [c[3].attempt for c in function.failures.calls] == list(range(1, attempts + 1))
    assert len({c[3].run_id for c in function.failures.calls}) == 1
    deadline = time.monotonic() + 5
    while (job := function.always_fails.get("doomed")) is not None and job.state.value != "failed":
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job is not None and job.state.value == "failed"


def test_retry_later_is_honoured(function: Function) -> None:
    function.patient_queue.enqueue("wait", {"n": 1}, {"retries": 2})
    function.patient.wait_for(2, timeout=8)
    first, second = function.patient.calls[:2]
    assert [first[3].attempt, second[3].attempt] == [1, 2]
    assert second[0] - first[0] >= 0.95  # Retry-After: 1, not the 20 ms backoff


def test_enqueue_from_inside_a_handler(function: Function) -> None:
    function.send_email.enqueue("welcome:ada", Email(to="ada@example.com"))
    function.emails.wait_for(2)
    assert sorted(c[3].name for c in function.emails.calls) == [
        "tips:ada@example.com", "welcome:ada"
    ]


def test_tampered_delivery_is_refused_and_never_reaches_the_handler(function: Function) -> None:
    body = build_envelope("emails", "forged", 1, datetime.now(UTC), {"to": "a@b.c"})
    headers = signed_headers(body, function.settings.signing_secret, msg_id="run_forged")
    endpoint = f"{function.front.url}/api/queues/emails"
    with httpx.Client() as client:
        refused = client.post(endpoint, content=body.replace(b"a@b.c", b"x@b.c"), headers=headers)
        shouted = {k.upper(): v for k, v in headers.items()}
        accepted = client.post(endpoint, content=body, headers=shouted)
        wrong_method = client.get(endpoint)
    assert refused.status_code == 401
    assert accepted.status_code == 200
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert [c[2] for c in function.emails.calls] == [Email(to="a@b.c")]


def test_update_get_and_delete_against_the_real_server(function: Function) -> None:
    with pytest.raises(JobNotFound):
        function.send_email.update("nobody", options={"retries": 2})
    assert function.send_email.get("nobody") is None
    far = datetime(2099, 1, 1, tzinfo=UTC)
    function.send_email.enqueue("kept", Email(to="k@example.com"), {"runAt": far, "retries": 4})
    updated = function.send_email.update("kept", options={"retries": 2})
    assert updated.options.retries == 2 and updated.options.run_at == far
    assert updated.state.value == "scheduled" and updated.next_run_at == far
    assert function.send_email.delete("kept") is not None
    assert function.send_email.get("kept") is None


# --- the command line front, with the example function ---------------------------------------


@pytest.fixture
def example_function(job_server: JobServer) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m taskless.testing.lambda_local examples.lambda_app:handler`` on a free port."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKLESS_")},
        "TASKLESS_URL": job_server.url,
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "taskless.testing.lambda_local", "examples.lambda_app:handler",
         "--source", "function-url", "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    assert " on http://127.0.0.1:" in banner, banner
    url = banner.split(" on ", 1)[1].split()[0]
    yield url, process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_example_function_behind_the_command_line_front(
    job_server: JobServer, example_function: tuple[str, subprocess.Popen[str]]
) -> None:
    url, process = example_function
    queue: Queue[Any] = Queue(
        "emails", endpoint=f"{url}/api/queues/emails", url=job_server.url,
        settings=job_server.settings,
    )
    with queue:
        queue.enqueue("hello", {"to": "cli@example.com", "subject": "Hello"})
        deadline = time.monotonic() + 10
        while (job := queue.get("hello")) is not None and job.state.value != "completed":
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
    with job_server.api() as api:
        runs = api.get("/v1/queues/emails/jobs/hello/runs").json()["runs"]
    assert [(r["status"], r["statusCode"]) for r in runs] == [("succeeded", 200)]
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=10)
    assert "email to cli@example.com: 'Hello'" in output
