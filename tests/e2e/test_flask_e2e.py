"""End to end: a real job server delivers to a real Flask app under werkzeug's threaded WSGI
server, over loopback; the app enqueues with the sync queue, from views and from outside."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from . import scenarios
from .conftest import JobServer
from .scenarios import Email, Handlers

flask = pytest.importorskip("flask")
werkzeug_serving = pytest.importorskip("werkzeug.serving")
Taskless = pytest.importorskip("taskless.integrations.flask").Taskless

pytestmark = pytest.mark.e2e


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


class App(Handlers):
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
        super().__init__(Taskless())

        @self.flask.post("/signup")
        def signup() -> dict[str, str]:
            email = flask.request.get_json()["email"]
            job = self.send_email.enqueue(f"welcome:{email}", Email(to=email))
            return {"job": job.name, "state": job.state.value}

        self.taskless.init_app(self.flask)  # after the queues: the app-factory order
        self.server.start()


@pytest.fixture
def app(job_server: JobServer) -> Iterator[App]:
    app = App(job_server)
    yield app
    app.server.stop()
    app.taskless.close()


def test_job_due_in_two_seconds_is_delivered_once_and_not_early(app: App) -> None:
    scenarios.job_due_in_two_seconds_is_delivered_once_and_not_early(app)


def test_recurring_job_is_delivered_on_its_grid(app: App) -> None:
    calls = scenarios.recurring_job_is_delivered_on_its_grid(app)
    for _, arrived_at, _, meta in calls:
        assert arrived_at >= meta.scheduled_at.timestamp() and meta.attempt == 1


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (1, 2), (5, 6)])
def test_failing_handler_is_attempted_retries_plus_one_times(
    app: App, retries: int, attempts: int
) -> None:
    scenarios.failing_handler_is_attempted_retries_plus_one_times(app, retries, attempts)


def test_exact_payload_through_the_job_server(app: App) -> None:
    scenarios.exact_payload_through_the_job_server(app)


def test_retry_later_is_honoured(app: App) -> None:
    scenarios.retry_later_is_honoured(app)


def test_enqueue_inside_a_flask_view(app: App) -> None:
    response = httpx.post(app.server.url + "/signup", json={"email": "view@example.com"})
    assert response.json() == {"job": "welcome:view@example.com", "state": "scheduled"}
    app.emails.wait_for(1)
    assert app.emails.calls[0][2] == Email(to="view@example.com")


def test_tampered_delivery_is_refused_and_never_reaches_the_handler(app: App) -> None:
    secret = app.taskless.settings_for(app.flask).signing_secret
    scenarios.tampered_delivery_is_refused_and_never_reaches_the_handler(
        app, app.server.url, secret
    )


def test_update_get_and_delete_against_the_real_server(app: App) -> None:
    updated = scenarios.update_and_get_against_the_real_server(app)
    assert updated.payload == Email(to="k@example.com")
    deleted = app.send_email.delete("kept")
    assert deleted is not None and deleted.name == "kept"
    assert app.send_email.get("kept") is None
    assert app.send_email.delete("kept") is None



@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_413_and_a_trailing_slash_is_the_route(app: App, chunked: bool) -> None:
    secret = app.taskless.settings_for(app.flask).signing_secret
    scenarios.oversized_body_is_413_and_a_trailing_slash_is_the_route(
        app, app.server.url, secret, chunked=chunked
    )
