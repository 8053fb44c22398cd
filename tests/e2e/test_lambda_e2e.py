"""End to end: a real job server delivers to the Lambda entry point behind the local HTTP front
(``taskless.testing.lambda_local``), once per event source it plays, over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskless import Queue
from taskless.integrations.aws_lambda import Taskless
from taskless.testing.lambda_local import SOURCES, LambdaFront

from . import scenarios
from .conftest import JobServer
from .scenarios import Email, Handlers

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: API Gateway stages in the URL for the sources that have them (the handler must remove them).
STAGES = {"apigw-rest": "prod", "apigw-http": "live"}


class Function(Handlers):
    """A Lambda function's code (``taskless = Taskless()``, queues, ``handler``) behind a local
    front of one event source."""

    def __init__(self, job_server: JobServer, source: str) -> None:
        # The front's URL is the function's public URL (TASKLESS_BASE_URL), so it comes first.
        self.front = LambdaFront(
            lambda event, context: self.handler(event, context), source, stage=STAGES.get(source)
        )
        self.settings = job_server.settings.replace(url=job_server.url, base_url=self.front.url)
        super().__init__(Taskless(settings=self.settings), follow_up=True, async_patient=True)
        self.handler = self.taskless.handler  # the function's entry point
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
    scenarios.job_due_in_two_seconds_is_delivered_once_and_not_early(function)


@timed
def test_recurring_job_is_delivered_on_its_grid(function: Function) -> None:
    scenarios.recurring_job_is_delivered_on_its_grid(function)


def test_exact_payload_through_the_job_server(function: Function) -> None:
    scenarios.exact_payload_through_the_job_server(function)


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (2, 3)])
def test_failing_handler_is_attempted_retries_plus_one_times(
    function: Function, retries: int, attempts: int
) -> None:
    scenarios.failing_handler_is_attempted_retries_plus_one_times(function, retries, attempts)


def test_retry_later_is_honoured(function: Function) -> None:
    scenarios.retry_later_is_honoured(function)


def test_enqueue_from_inside_a_handler(function: Function) -> None:
    function.send_email.enqueue("welcome:ada", Email(to="ada@example.com"))
    function.emails.wait_for(2)
    assert sorted(c[3].name for c in function.emails.calls) == [
        "tips:ada@example.com", "welcome:ada"
    ]


def test_tampered_delivery_is_refused_and_never_reaches_the_handler(function: Function) -> None:
    scenarios.tampered_delivery_is_refused_and_never_reaches_the_handler(
        function, function.front.url, function.settings.signing_secret
    )


def test_oversized_body_is_413_and_a_trailing_slash_is_the_route(function: Function) -> None:
    scenarios.oversized_body_is_413_and_a_trailing_slash_is_the_route(
        function, function.front.url, function.settings.signing_secret
    )


def test_update_get_and_delete_against_the_real_server(function: Function) -> None:
    scenarios.update_and_get_against_the_real_server(function)
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
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        process.communicate()  # reaps it and closes the pipe


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
