"""End to end: a real job server delivers to a real Flask app under werkzeug's threaded WSGI
server, over loopback; the app enqueues with the sync queue, from views and from outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from taskless import JobMeta, JobNotFound, RetryLater
from taskless.core.envelope import build_envelope
from taskless.core.signing import signed_headers

from .conftest import JobServer, Recorder

flask = pytest.importorskip("flask")
werkzeug_serving = pytest.importorskip("werkzeug.serving")
Taskless = pytest.importorskip("taskless.integrations.flask").Taskless

pytestmark = pytest.mark.e2e

PAYLOAD = {
    "city": "Zürich", "tag": "🚒", "sep": "a\u2028b", "price": 10.5, "n": 12345678901234567890
}


class Email(BaseModel):
    to: str


class WsgiServer:
    """werkzeug's threaded development server on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = werkzeug_serving.make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class App:
    """A Flask app with its queues, configured through ``app.config``, served by werkzeug."""

    def __init__(self, job_server: JobServer) -> None:
        self.flask = flask.Flask("e2e")
        self.server = WsgiServer(self.flask)
        self.flask.config.update(
            TASKLESS_URL=job_server.url,
            TASKLESS_BASE_URL=self.server.url,
            TASKLESS_API_KEY=job_server.settings.api_key,
            TASKLESS_SIGNING_SECRET=job_server.settings.signing_secret,
        )
        self.taskless = Taskless()
        self.emails = Recorder()
        self.exact = Recorder()
        self.failures = Recorder()
        self.patient = Recorder()

        @self.taskless.queue("emails")
        def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
            self.emails.add(payload, meta)
            return {"sent": payload.to}

        @self.taskless.queue("exact")
        async def exact(payload: dict[str, Any], meta: JobMeta) -> None:
            self.exact.add(payload, meta)

        @self.taskless.queue("broken")
        def always_fails(payload: dict[str, Any], meta: JobMeta) -> None:
            self.failures.add(payload, meta)
            raise RuntimeError("this handler always fails")

        @self.taskless.queue("patient")
        def patient(payload: dict[str, Any], meta: JobMeta) -> None:
            self.patient.add(payload, meta)
            if meta.attempt == 1:
                raise RetryLater(1)

        @self.flask.post("/signup")
        def signup() -> dict[str, str]:
            email = flask.request.get_json()["email"]
            job = send_email.enqueue(f"welcome:{email}", Email(to=email))
            return {"job": job.name, "state": job.state.value}

        self.taskless.init_app(self.flask)  # after the queues: the app-factory order
        self.send_email = send_email
        self.exact_queue = exact
        self.always_fails = always_fails
        self.patient_queue = patient
        self.server.start()


@pytest.fixture
def app(job_server: JobServer) -> Iterator[App]:
    app = App(job_server)
    yield app
    app.server.stop()
    app.taskless.close()


def test_job_due_in_two_seconds_is_delivered_once_and_not_early(app: App) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    job = app.send_email.enqueue("later", Email(to="ada@example.com"), {"runAt": due})
    assert job.state.value == "scheduled" and job.next_run_at == due
    app.emails.wait_for(1, timeout=6)
    app.emails.settle(quiet=0.5)
    assert len(app.emails.calls) == 1
    _, arrived_at, payload, meta = app.emails.calls[0]
    assert payload == Email(to="ada@example.com")
    assert arrived_at >= due.timestamp()
    assert (meta.attempt, meta.scheduled_at, meta.name, meta.queue) == (1, due, "later", "emails")
    done = app.send_email.get("later")
    assert done is not None and done.state.value == "completed" and done.next_run_at is None


def test_recurring_job_is_delivered_on_its_grid(app: App) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    app.send_email.enqueue(
        "tick", Email(to="grid@example.com"), {"runAt": start, "runEvery": "PT1S"}
    )
    app.emails.wait_for(3, timeout=8)
    app.send_email.delete("tick")
    calls = app.emails.calls[:3]
    assert [c[3].scheduled_at for c in calls] == [start + timedelta(seconds=k) for k in range(3)]
    assert len({c[3].run_id for c in calls}) == 3
    for _, arrived_at, _, meta in calls:
        assert arrived_at >= meta.scheduled_at.timestamp() and meta.attempt == 1


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (1, 2), (5, 6)])
def test_failing_handler_is_attempted_retries_plus_one_times(
    app: App, retries: int, attempts: int
) -> None:
    app.always_fails.enqueue("doomed", {"n": 1}, {"retries": retries})
    app.failures.wait_for(attempts, timeout=10)
    app.failures.settle(quiet=0.6)
    assert [c[3].attempt for c in app.failures.calls] == list(range(1, attempts + 1))
    assert len({c[3].run_id for c in app.failures.calls}) == 1
    deadline = time.monotonic() + 5
    while (job := app.always_fails.get("doomed")) is not None and job.state.value != "failed":
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job is not None and job.state.value == "failed"


def test_exact_payload_through_the_job_server(app: App) -> None:
    app.exact_queue.enqueue("exact", PAYLOAD)
    app.exact.wait_for(1)
    [(_, _, payload, meta)] = app.exact.calls
    assert payload == PAYLOAD
    assert type(payload["n"]) is int and type(payload["price"]) is float
    assert meta.headers["webhook-id"] == meta.run_id


def test_retry_later_is_honoured(app: App) -> None:
    app.patient_queue.enqueue("wait", {"n": 1}, {"retries": 2})
    app.patient.wait_for(2, timeout=8)
    first, second = app.patient.calls[:2]
    assert [first[3].attempt, second[3].attempt] == [1, 2]
    assert second[0] - first[0] >= 0.95  # Retry-After: 1, not the 20 ms backoff


def test_enqueue_inside_a_flask_view(app: App) -> None:
    response = httpx.post(app.server.url + "/signup", json={"email": "view@example.com"})
    assert response.json() == {"job": "welcome:view@example.com", "state": "scheduled"}
    app.emails.wait_for(1)
    assert app.emails.calls[0][2] == Email(to="view@example.com")


def test_tampered_delivery_is_refused_and_never_reaches_the_handler(app: App) -> None:
    body = build_envelope("emails", "forged", 1, datetime.now(UTC), {"to": "a@b.c"})
    secret = app.taskless.settings_for(app.flask).signing_secret
    headers = signed_headers(body, secret, msg_id="run_forged")
    endpoint = f"{app.server.url}/api/queues/emails"
    with httpx.Client() as client:
        refused = client.post(endpoint, content=body.replace(b"a@b.c", b"x@b.c"), headers=headers)
        shouted = {k.upper(): v for k, v in headers.items()}
        accepted = client.post(endpoint, content=body, headers=shouted)
        wrong_method = client.get(endpoint)
    assert refused.status_code == 401
    assert accepted.status_code == 200
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert [c[2] for c in app.emails.calls] == [Email(to="a@b.c")]


def test_update_get_and_delete_against_the_real_server(app: App) -> None:
    with pytest.raises(JobNotFound):
        app.send_email.update("nobody", options={"retries": 2})
    assert app.send_email.get("nobody") is None
    far = datetime(2099, 1, 1, tzinfo=UTC)
    app.send_email.enqueue("kept", Email(to="k@example.com"), {"runAt": far, "retries": 4})
    updated = app.send_email.update("kept", options={"retries": 2})
    assert updated.options.retries == 2 and updated.options.run_at == far
    assert updated.payload == Email(to="k@example.com")
    assert updated.state.value == "scheduled" and updated.next_run_at == far
    deleted = app.send_email.delete("kept")
    assert deleted is not None and deleted.name == "kept"
    assert app.send_email.get("kept") is None
    assert app.send_email.delete("kept") is None
