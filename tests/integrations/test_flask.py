"""What the Flask integration adds to the receiver contract: the extension pattern, settings
from ``app.config``, a sync queue per app, Blueprint routes."""

from __future__ import annotations

import base64
import importlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.crypto import PayloadCipher
from taskless.core.errors import ConfigurationError, JobNotFound, MissingExtra, ValidationError
from taskless.core.models import JobMeta
from taskless.core.queue import Queue
from taskless.core.settings import DEV_SIGNING_SECRET, Settings
from taskless.core.signing import signed_headers

from .conftest import ENCRYPTION_KEY, NOW, SETTINGS, FlaskHarness
from .recording import WELCOME_THEN_MISSING, RecordingTransport, recording_transport
from .test_receiver_contract import PAYLOAD, body_for, post

flask = pytest.importorskip("flask")
Flask = flask.Flask
flask_integration = pytest.importorskip("taskless.integrations.flask")
Taskless = flask_integration.Taskless
QueueHandler = flask_integration.QueueHandler


class Email(BaseModel):
    to: str


def secret(text: str) -> str:
    return "whsec_" + base64.b64encode(text.encode()).decode()


def build(**kwargs: Any) -> tuple[Any, Any]:
    app = Flask("test")
    kwargs.setdefault("settings", SETTINGS)
    return app, Taskless(app, clock=lambda: NOW, **kwargs)


def harness(app: Any, taskless: Any) -> FlaskHarness:
    return FlaskHarness(app, taskless)


# --- the decorated handler -------------------------------------------------------------------


def test_decorated_handlers_stay_callable() -> None:
    _, taskless = build()

    @taskless.queue("emails")
    def send_email(payload: Email, meta: JobMeta) -> str:
        """Send one email."""
        return payload.to

    assert isinstance(send_email, QueueHandler)
    assert (send_email.__name__, send_email.__doc__) == ("send_email", "Send one email.")
    meta = JobMeta(queue="emails", name="j", run_id="r", attempt=1, scheduled_at=datetime.now(UTC))
    assert send_email(Email(to="a"), meta) == "a"
    assert (send_email.name, send_email.route) == ("emails", "/api/queues/emails")
    assert set(taskless.handlers) == {"emails"}


def test_queue_is_a_sync_queue_built_lazily_with_route_defaults_and_type() -> None:
    app, taskless = build()

    @taskless.queue("emails", options={"retries": 2, "headers": {"x-team": "growth"}})
    def send_email(payload: Email) -> None: ...

    assert app.extensions["taskless"].queues == {}  # nothing at declaration (import) time
    queue = send_email.queue
    assert isinstance(queue, Queue)
    assert queue.endpoint == "https://app.example.com/api/queues/emails"
    assert (queue.defaults.retries, queue.defaults.headers) == (2, {"x-team": "growth"})
    assert queue.payload_type is Email
    assert send_email.queue is queue
    taskless.close()
    assert send_email.queue is not queue  # rebuilt after close()


def test_bad_declarations_fail_at_once() -> None:
    _, taskless = build()
    with pytest.raises(ValidationError) as info:
        taskless.queue("emails", options={"retries": -1})
    assert info.value.field == "retries"
    with pytest.raises(ValidationError):
        taskless.queue("no spaces")(lambda payload: None)
    taskless.queue("emails")(lambda payload: None)
    with pytest.raises(ConfigurationError):
        taskless.queue("emails")(lambda payload: None)


@pytest.fixture
def recording() -> Iterator[RecordingTransport]:
    with recording_transport() as transport:
        yield transport


def test_enqueue_inside_a_flask_view(recording: RecordingTransport) -> None:
    app, taskless = build(settings=SETTINGS.replace(url="recording://jobs"))

    @taskless.queue("emails", route="/hooks/email")
    def send_email(payload: Email) -> None: ...

    @app.post("/signup")
    def signup() -> dict[str, Any]:
        job = send_email.enqueue("welcome", Email(to="ada@example.com"), {"retries": 1})
        assert send_email.get("welcome") is not None
        assert send_email.get("missing") is None
        send_email.update("welcome", options={"enabled": False})
        with pytest.raises(JobNotFound):
            send_email.update("missing", Email(to="x"))
        assert send_email.delete("missing") is None
        return {"job": job.name, "to": job.payload.to}

    response = app.test_client().post("/signup")
    assert response.json == {"job": "welcome", "to": "ada@example.com"}
    methods = [(r.method, r.path) for r in recording.requests]
    assert methods == WELCOME_THEN_MISSING
    assert recording.requests[0].json["endpoint"] == "https://app.example.com/hooks/email"
    sent = recording.requests[0].json  # encrypted: the settings have an encryption key
    assert "payload" not in sent
    assert PayloadCipher(ENCRYPTION_KEY).decrypt(sent["encrypted"], "emails") == {
        "to": "ada@example.com"
    }


# --- the extension pattern -------------------------------------------------------------------


def test_app_factory_with_init_app() -> None:
    taskless = Taskless(clock=lambda: NOW)
    seen: list[Any] = []

    @taskless.queue("early")
    def early(payload: Any) -> None:
        seen.append(("early", payload))

    def create_app() -> Any:
        app = Flask("factory")
        app.config.update(
            TASKLESS_SIGNING_SECRET=SETTINGS.signing_secret,
            TASKLESS_BASE_URL="https://factory.example.com",
        )
        taskless.init_app(app)
        taskless.init_app(app)  # once per app
        return app

    app = create_app()

    @taskless.queue("late")
    def late(payload: Any) -> None:
        seen.append(("late", payload))

    assert "taskless" in app.blueprints
    client = harness(app, taskless)
    assert post(client, "early", {"n": 1}).status == 200
    assert post(client, "late", {"n": 2}).status == 200
    assert seen == [("early", {"n": 1}), ("late", {"n": 2})]
    with app.app_context():
        assert late.queue.endpoint == "https://factory.example.com/api/queues/late"


def test_settings_from_config_fall_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKLESS_SIGNING_SECRET", secret("from-env"))
    monkeypatch.setenv("TASKLESS_BASE_URL", "https://env.example.com")
    monkeypatch.setenv("TASKLESS_URL", "http://jobs.internal:3001")
    app = Flask("config")
    app.config["TASKLESS_BASE_URL"] = "https://config.example.com"
    app.config["TASKLESS_PREVIOUS_SIGNING_SECRETS"] = [secret("old-1"), secret("old-2")]
    app.config["TASKLESS_API_KEY"] = None  # "not set here": the environment (or default) applies
    taskless = Taskless(app, clock=lambda: NOW)
    settings = taskless.settings_for(app)
    assert settings.base_url == "https://config.example.com"  # config wins
    assert settings.url == "http://jobs.internal:3001"  # environment fills in
    assert settings.signing_secrets == (secret("from-env"), secret("old-1"), secret("old-2"))
    taskless.queue("emails")(lambda payload: "ok")
    client = harness(app, taskless)
    for key in ("from-env", "old-2"):
        assert post(client, "emails", secret=secret(key)).status == 200
    assert post(client, "emails", secret=secret("unknown")).status == 401


def test_production_without_a_secret_fails_on_first_use_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKLESS_SIGNING_SECRET", raising=False)
    app = Flask("prod")
    app.config.update(TASKLESS_ENV="production", TASKLESS_API_KEY="key")
    taskless = Taskless(app, clock=lambda: NOW)  # settings are not read yet
    send = taskless.queue("emails")(lambda payload: "ok")
    with pytest.raises(ConfigurationError, match="TASKLESS_SIGNING_SECRET is not set"):
        taskless.settings_for(app)
    with app.app_context(), pytest.raises(ConfigurationError, match="TASKLESS_SIGNING_SECRET"):
        send.queue  # noqa: B018
    app.testing = True  # let the view's error through, rather than Flask's 500 page
    with pytest.raises(ConfigurationError, match="TASKLESS_SIGNING_SECRET"):
        post(harness(app, taskless), "emails")
    # A failure is not kept: once the config is complete, it is read again, and works.
    app.config["TASKLESS_SIGNING_SECRET"] = SETTINGS.signing_secret
    assert post(harness(app, taskless), "emails").status == 200


def test_config_set_after_the_extension_is_read_on_first_use(
    recording: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TASKLESS_URL", "TASKLESS_SIGNING_SECRET", "TASKLESS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = Flask("late")
    taskless = Taskless(app, clock=lambda: NOW)

    @taskless.queue("emails")
    def send_email(payload: Email) -> str:
        return payload.to

    # The usual order in app factories: extensions first, config after.
    app.config.update(
        TASKLESS_URL="recording://jobs",
        TASKLESS_SIGNING_SECRET=secret("late"),
        TASKLESS_BASE_URL="https://late.example.com",
    )
    reply = post(harness(app, taskless), "emails", {"to": "a@b.c"}, secret=secret("late"))
    assert reply.status == 200, reply.body  # not a 401 against the development secret
    with app.app_context():
        send_email.enqueue("welcome", Email(to="ada@example.com"))
    [request] = recording.requests  # the late TASKLESS_URL, not the default job server
    assert request.json["endpoint"] == "https://late.example.com/api/queues/emails"
    # Read once per app, then kept.
    app.config["TASKLESS_BASE_URL"] = "https://later.example.com"
    assert taskless.settings_for(app).base_url == "https://late.example.com"


def test_config_loaded_after_init_app_in_a_factory() -> None:
    taskless = Taskless(clock=lambda: NOW)
    taskless.queue("emails")(lambda payload: "ok")

    def create_app() -> Any:
        app = Flask("factory-late")
        taskless.init_app(app)
        app.config.from_mapping(
            TASKLESS_SIGNING_SECRET=secret("factory"), TASKLESS_BASE_URL="https://f.example.com"
        )
        return app

    app = create_app()
    assert post(harness(app, taskless), "emails", secret=secret("factory")).status == 200
    assert taskless.settings_for(app).base_url == "https://f.example.com"


def test_explicit_settings_win_over_config_set_later() -> None:
    app = Flask("explicit-late")
    taskless = Taskless(app, settings=SETTINGS, clock=lambda: NOW)
    app.config.update(TASKLESS_BASE_URL="https://config.example.com",
                      TASKLESS_SIGNING_SECRET=secret("config"))
    taskless.queue("emails")(lambda payload: "ok")
    assert taskless.settings_for(app) is SETTINGS
    assert post(harness(app, taskless), "emails").status == 200  # SETTINGS' secret


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"TASKLESS_SIGNING_SECRET": "whsec_!!!"},
         ("TASKLESS_SIGNING_SECRET is not a valid signing secret (expected 'whsec_' followed "
          "by base64); set it to the job server's TASKLESS_SIGNING_SECRET")),
        ({"TASKLESS_SIGNING_SECRET": 12345}, "TASKLESS_SIGNING_SECRET is not a valid"),
        ({"TASKLESS_PREVIOUS_SIGNING_SECRETS": [secret("old"), "whsec_!!!"]},
         "TASKLESS_PREVIOUS_SIGNING_SECRETS: entry 2 of 2 is not a valid signing secret"),
        ({"TASKLESS_PREVIOUS_SIGNING_SECRETS": "whsec_??,"},
         "TASKLESS_PREVIOUS_SIGNING_SECRETS: entry 1 of 1 is not a valid signing secret"),
    ],
    ids=["bad-base64", "int", "previous-list", "previous-string"],
)
def test_an_invalid_secret_in_the_config_is_named(
    config: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKLESS_PREVIOUS_SIGNING_SECRETS", raising=False)
    app = Flask("bad-secret")
    app.config.update(config)
    taskless = Taskless(app)
    with pytest.raises(ConfigurationError) as info:
        taskless.settings_for(app)
    assert str(info.value).startswith(message)


def test_an_invalid_secret_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLESS_SIGNING_SECRET", "12345")
    app = Flask("bad-env-secret")
    taskless = Taskless(app)
    with pytest.raises(ConfigurationError, match="^TASKLESS_SIGNING_SECRET is not a valid"):
        taskless.receiver_for(app)


def test_explicit_settings_win_over_config() -> None:
    app = Flask("explicit")
    app.config["TASKLESS_BASE_URL"] = "https://config.example.com"
    taskless = Taskless(app, settings=SETTINGS)
    assert taskless.settings_for(app) is SETTINGS


def test_one_extension_several_apps_each_with_its_settings() -> None:
    taskless = Taskless(clock=lambda: NOW)
    seen: list[str] = []
    send = taskless.queue("emails")(lambda payload: seen.append(payload["who"]))
    apps = []
    for name in ("blue", "green"):
        app = Flask(name)
        app.config.update(
            TASKLESS_SIGNING_SECRET=secret(name), TASKLESS_BASE_URL=f"https://{name}.example.com"
        )
        taskless.init_app(app)
        apps.append(app)
    blue, green = (harness(app, taskless) for app in apps)
    assert post(blue, "emails", {"who": "blue"}, secret=secret("blue")).status == 200
    assert post(green, "emails", {"who": "green"}, secret=secret("green")).status == 200
    assert post(blue, "emails", {"who": "x"}, secret=secret("green")).status == 401
    assert seen == ["blue", "green"]
    for app in apps:
        with app.app_context():
            assert send.queue.endpoint == f"https://{app.name}.example.com/api/queues/emails"
    with pytest.raises(ConfigurationError, match="app_context"):
        send.queue  # noqa: B018 - which app's settings? refuse to guess


def test_outside_any_app_the_queue_uses_the_only_app_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKLESS_BASE_URL", "https://env.example.com")
    taskless = Taskless()
    send = taskless.queue("emails")(lambda payload: None)
    assert send.queue.endpoint == "https://env.example.com/api/queues/emails"  # no app yet
    app = Flask("only")
    app.config["TASKLESS_BASE_URL"] = "https://only.example.com"
    taskless.init_app(app)
    assert send.queue.endpoint == "https://only.example.com/api/queues/emails"
    taskless.close()


def test_a_second_extension_on_the_same_app_is_refused() -> None:
    app, _ = build()
    with pytest.raises(ConfigurationError, match="already has a Taskless"):
        Taskless(app, settings=SETTINGS)


# --- routes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("declared_after_init", [False, True])
def test_custom_routes_are_mounted(declared_after_init: bool) -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)
    app = Flask("custom")
    if declared_after_init:
        taskless.init_app(app)
    taskless.queue("emails", route="/hooks/email")(lambda payload: "custom")
    if not declared_after_init:
        taskless.init_app(app)
    client = harness(app, taskless)
    reply = post(client, "emails", path="/hooks/email")
    assert (reply.status, reply.json()["result"]) == (200, "custom")
    assert post(client, "emails").status == 404  # not at the default route any more
    assert post(client, "emails", path="/hooks/email", method="GET").status == 405


def test_trailing_slashes_reach_the_receiver_not_flask_404() -> None:
    app, taskless = build()
    taskless.queue("emails")(lambda payload: "default")
    taskless.queue("refunds", route="/hooks/refund")(lambda payload: "custom")
    client = harness(app, taskless)
    reply = post(client, "emails", path="/api/queues/emails/")
    assert (reply.status, reply.json()["result"]) == (200, "default")
    reply = post(client, "refunds", path="/hooks/refund/")
    assert (reply.status, reply.json()["result"]) == (200, "custom")
    unknown = post(client, "nope", path="/api/queues/nope/")
    assert unknown.headers["content-type"] == "application/json"
    assert (unknown.status, unknown.json()["error"]["code"]) == (404, "not_found")


def test_custom_route_after_the_app_served_a_request_is_a_clear_error() -> None:
    app, taskless = build()
    taskless.queue("emails")(lambda payload: None)
    assert post(harness(app, taskless), "emails").status == 200
    with pytest.raises(ConfigurationError, match="before the app starts"):
        taskless.queue("late", route="/hooks/late")(lambda payload: None)


def test_custom_prefix() -> None:
    app, taskless = build(prefix="/_jobs/")
    taskless.queue("emails")(lambda payload: 1)
    client = harness(app, taskless)
    assert post(client, "emails", path="/_jobs/emails").status == 200
    assert post(client, "emails").status == 404


def test_app_routes_untouched_and_flask_body_parsing_unused() -> None:
    app, taskless = build()

    @app.post("/hello")
    def hello() -> str:
        return "hello " + flask.request.get_data(as_text=True)

    taskless.queue("emails")(lambda payload: payload)
    client = harness(app, taskless)
    reply = client.request("POST", "/hello", headers={}, body=b"world")
    assert (reply.status, reply.body) == (200, b"hello world")
    reply = post(client, "emails", PAYLOAD)
    assert reply.status == 200 and reply.json()["result"] == PAYLOAD
    # A form content type must not make Flask consume the body before the signature check.
    body = body_for("emails")
    headers = {
        **signed_headers(body, SETTINGS.signing_secret, timestamp=NOW),
        "content-type": "application/x-www-form-urlencoded",
    }
    assert client.request("POST", "/api/queues/emails", headers=headers, body=body).status == 200


def test_head_and_options_are_405_too() -> None:
    app, taskless = build()
    taskless.queue("emails")(lambda payload: None)
    client = app.test_client()
    for method in ("HEAD", "OPTIONS", "PATCH"):
        response = client.open("/api/queues/emails", method=method)
        assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_works_under_a_script_name() -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client

    app, taskless = build()
    taskless.queue("emails")(lambda payload: "mounted")
    outer = DispatcherMiddleware(Flask("outer"), {"/sub": app})
    body = body_for("emails")
    headers = signed_headers(body, SETTINGS.signing_secret, timestamp=NOW)
    response = Client(outer).post("/sub/api/queues/emails", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"] == "mounted"


def test_async_handler_without_flask_async_extra() -> None:
    app, taskless = build()
    seen: list[Any] = []

    @taskless.queue("emails")
    async def handler(payload: Email, meta: JobMeta) -> str:
        seen.append((payload, meta.run_id))
        return payload.to

    reply = post(harness(app, taskless), "emails", {"to": "async@example.com"}, run_id="run_a")
    assert (reply.status, reply.json()["result"]) == (200, "async@example.com")
    assert seen == [(Email(to="async@example.com"), "run_a")]


def test_the_development_secret_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TASKLESS_SIGNING_SECRET", "TASKLESS_ENV", "TASKLESS_PREVIOUS_SIGNING_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    app = Flask("dev")
    taskless = Taskless(app, clock=lambda: NOW)
    assert taskless.settings_for(app) == Settings.from_env({})
    taskless.queue("emails")(lambda payload: None)
    assert post(harness(app, taskless), "emails", secret=DEV_SIGNING_SECRET).status == 200


def test_missing_flask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # makes "import flask" fail
    monkeypatch.delitem(sys.modules, "taskless.integrations.flask")
    with pytest.raises(MissingExtra) as info:
        importlib.import_module("taskless.integrations.flask")
    assert "pip install 'taskless[flask]'" in str(info.value)


# --- body size -------------------------------------------------------------------------------


def run_wsgi(app: Any, environ: dict[str, Any]) -> tuple[int, Any]:
    """Call the WSGI app with ``environ`` as it is (no test client rebuilding the input)."""
    from werkzeug.test import run_wsgi_app

    iterable, status, _ = run_wsgi_app(app, environ)
    return int(status.split()[0]), json.loads(b"".join(iterable))


def sized(app: Any, taskless: Any, size: int) -> tuple[bytes, dict[str, str]]:
    body = body_for("emails", {"pad": "x" * size})
    return body, signed_headers(body, SETTINGS.signing_secret, timestamp=NOW)


def test_a_declared_body_over_max_body_bytes_is_413_unread() -> None:
    from werkzeug.test import EnvironBuilder

    app, taskless = build(max_body_bytes=1000)
    seen: list[Any] = []
    taskless.queue("emails")(seen.append)
    body, headers = sized(app, taskless, 1000)

    class Unreadable:
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

        readline = readlines = read

    environ = EnvironBuilder(
        path="/api/queues/emails", method="POST", headers=headers, data=body
    ).get_environ()
    environ["wsgi.input"] = Unreadable()
    status, answer = run_wsgi(app, environ)
    assert status == 413
    assert answer["error"]["code"] == "too_large"
    assert "1000 bytes" in answer["error"]["message"]
    assert seen == []


def test_a_streamed_body_over_max_body_bytes_is_413_once_it_goes_over() -> None:
    import io

    from werkzeug.test import EnvironBuilder

    app, taskless = build(max_body_bytes=1000)
    seen: list[Any] = []
    taskless.queue("emails")(seen.append)

    class Stream(io.RawIOBase):
        """An endless body (chunked, no Content-Length); counts what is read."""

        taken = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            size = min(len(buffer), 100)
            buffer[:size] = b"x" * size
            self.taken += size
            return size

    def environ(stream: Any, body_headers: dict[str, str]) -> dict[str, Any]:
        built = EnvironBuilder(
            path="/api/queues/emails", method="POST", headers=body_headers
        ).get_environ()
        built.pop("CONTENT_LENGTH", None)
        built["wsgi.input"] = stream
        built["wsgi.input_terminated"] = True  # the server ends a chunked body
        return built

    stream = Stream()
    _, headers = sized(app, taskless, 10)
    status, answer = run_wsgi(app, environ(stream, headers))
    assert (status, answer["error"]["code"]) == (413, "too_large")
    assert 1000 < stream.taken <= 1000 + 64 * 1024  # stopped soon after the limit
    # A streamed body under the limit is delivered.
    body, headers = sized(app, taskless, 10)
    status, answer = run_wsgi(app, environ(io.BytesIO(body), headers))
    assert status == 200, answer
    assert len(seen) == 1


def test_the_app_max_content_length_is_answered_as_json_too() -> None:
    app, taskless = build()
    app.config["MAX_CONTENT_LENGTH"] = 500
    taskless.queue("emails")(lambda payload: None)
    body, headers = sized(app, taskless, 1000)
    response = app.test_client().post("/api/queues/emails", data=body, headers=headers)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"


def test_max_body_bytes_is_checked_when_the_extension_is_built() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        Taskless(max_body_bytes=0)
