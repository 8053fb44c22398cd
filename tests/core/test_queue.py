"""Queue and AsyncQueue against an in-test transport: the exact requests, the read-back, errors.

Every case runs on both shells, through ``call``, so they cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.errors import (
    ConfigurationError,
    JobNotFound,
    ServerError,
    TransportError,
    ValidationError,
)
from taskless.core.hooks import hookimpl, registered
from taskless.core.http import AsyncHttpTransport, HttpTransport
from taskless.core.models import Job, JobOptions, JobState, merge_options, parse_options
from taskless.core.queue import UNSET, AsyncQueue, BaseQueue, Queue, validate_name
from taskless.core.settings import Settings
from taskless.core.transport import ApiRequest, ApiResponse, AsyncTransport, Transport

pytestmark = pytest.mark.anyio

SETTINGS = Settings(base_url="http://app.test/", url="http://jobs.test")
ENDPOINT = "http://app.test/api/queues/emails"


def job_json(name: str = "welcome", payload: Any = None, **options: Any) -> dict[str, Any]:
    return {
        "id": "job_1",
        "queue": "emails",
        "name": name,
        "endpoint": ENDPOINT,
        "payload": {"to": "ada@example.com"} if payload is None else payload,
        "options": {"enabled": True, "headers": {}, "retries": 5, **options},
        "state": "scheduled",
        "nextRunAt": "2025-01-01T09:00:00Z",
        "createdAt": "2024-12-31T12:00:00Z",
        "updatedAt": "2024-12-31T12:00:00Z",
    }


def error_json(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


NOT_FOUND = ApiResponse(404, error_json("not_found", "no such job"))


class FakeTransport(Transport, AsyncTransport):
    """Records requests and answers each with the next canned response (or ``respond``)."""

    def __init__(
        self, *responses: ApiResponse, respond: Callable[[ApiRequest], ApiResponse] | None = None
    ) -> None:
        self.responses = list(responses)
        self.respond = respond
        self.requests: list[ApiRequest] = []
        self.closed = False

    def handle(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        if self.respond is not None:
            return self.respond(request)
        return self.responses.pop(0)

    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        return self.handle(request)

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True

    @property
    def request(self) -> ApiRequest:
        (only,) = self.requests
        return only


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_queue(kind: str) -> Callable[..., BaseQueue[Any, Any]]:
    def make(*responses: ApiResponse, **kwargs: Any) -> BaseQueue[Any, Any]:
        kwargs.setdefault("settings", SETTINGS)
        kwargs.setdefault("transport", FakeTransport(*responses))
        cls = Queue if kind == "sync" else AsyncQueue
        return cls(kwargs.pop("name", "emails"), **kwargs)

    return make


async def call(queue: BaseQueue[Any, Any], method: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(queue, method)(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def sent(queue: BaseQueue[Any, Any]) -> ApiRequest:
    transport = queue.transport
    assert isinstance(transport, FakeTransport)
    return transport.request


# -- enqueue ---------------------------------------------------------------------------------


async def test_enqueue_puts_the_job_under_its_name(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(201, job_json()))
    job = await call(queue, "enqueue", "welcome", {"to": "ada@example.com"})
    assert sent(queue) == ApiRequest(
        "PUT",
        "/v1/queues/emails/jobs/welcome",
        {"payload": {"to": "ada@example.com"}, "endpoint": ENDPOINT, "options": {}},
    )
    assert isinstance(job, Job)
    assert job.name == "welcome"
    assert job.state is JobState.SCHEDULED
    assert job.payload == {"to": "ada@example.com"}
    assert job.next_run_at == datetime(2025, 1, 1, 9, tzinfo=UTC)


async def test_enqueue_without_a_name_posts_and_the_server_names_the_job(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(201, job_json(name="generated-1")))
    job = await call(queue, "enqueue", None, [1, 2])
    assert sent(queue) == ApiRequest(
        "POST", "/v1/queues/emails/jobs", {"payload": [1, 2], "endpoint": ENDPOINT, "options": {}}
    )
    assert job.name == "generated-1"


async def test_options_go_camel_case_on_the_wire(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    options = {
        "run_at": "2025-01-01T10:00:00+01:00",
        "run_every": "P1D",
        "timezone": "Europe/Paris",
        "retries": 2,
        "enabled": False,
        "headers": {"x-tenant": "7"},
    }
    await call(queue, "enqueue", "welcome", {}, options)
    assert sent(queue).json["options"] == {
        "runAt": "2025-01-01T10:00:00+01:00",
        "runEvery": "P1D",
        "timezone": "Europe/Paris",
        "retries": 2,
        "enabled": False,
        "headers": {"x-tenant": "7"},
    }


@pytest.mark.parametrize(
    "options",
    [
        {"runAt": "2025-01-01T09:00:00Z", "runEvery": "PT1H"},
        JobOptions(run_at=datetime(2025, 1, 1, 9, tzinfo=UTC), run_every="PT1H"),
    ],
    ids=["camel-dict", "JobOptions"],
)
async def test_options_accept_camel_case_and_job_options(make_queue: Any, options: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    await call(queue, "enqueue", "welcome", {}, options)
    assert sent(queue).json["options"] == {"runAt": "2025-01-01T09:00:00Z", "runEvery": "PT1H"}


async def test_queue_defaults_are_merged_and_headers_merge(make_queue: Any) -> None:
    queue = make_queue(
        ApiResponse(200, job_json()),
        defaults={"retries": 3, "headers": {"x-app": "shop", "x-tenant": "0"}},
    )
    await call(queue, "enqueue", "welcome", {}, {"headers": {"x-tenant": "7"}, "enabled": False})
    assert sent(queue).json["options"] == {
        "retries": 3,
        "enabled": False,
        "headers": {"x-app": "shop", "x-tenant": "7"},
    }


@pytest.mark.parametrize(
    "options",
    [
        None,
        {},
        {"retries": 0},
        {"run_at": "2025-01-01T10:00+01:00", "runEvery": "P1D", "timezone": "Europe/Paris"},
        {"headers": {"X-Tenant": "7"}, "enabled": False, "runAt": None},
        JobOptions(retries=2),
    ],
)
@pytest.mark.parametrize("defaults", [None, {"retries": 3, "headers": {"x-app": "shop"}}])
def test_the_options_sent_are_those_merged_over_the_defaults(
    options: Any, defaults: Any
) -> None:
    queue = Queue("emails", settings=SETTINGS, transport=FakeTransport(), defaults=defaults)
    expected = merge_options(queue.defaults, parse_options(options)).to_wire(only_set=True)
    assert queue._options_wire(options) == expected


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"retries": -1}, "retries"),
        ({"run_at": "2025-01-01T09:00:00"}, "run_at"),
        ({"runAt": "tomorrow"}, "run_at"),
        ({"run_every": "P"}, "run_every"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"retry": 3}, "retry"),
        ("P1D", "options"),
    ],
)
async def test_bad_options_fail_locally_naming_the_field(
    make_queue: Any, options: Any, field: str
) -> None:
    queue = make_queue()
    with pytest.raises(ValidationError) as caught:
        await call(queue, "enqueue", "welcome", {}, options)
    assert caught.value.field == field
    assert queue.transport.requests == []


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", ".hidden", "with space", "é", "x" * 201, 42, "a?b", "a#b", "a%2F"]
)
async def test_bad_job_names_fail_locally(make_queue: Any, name: Any) -> None:
    queue = make_queue()
    for method, args in [("enqueue", (name, {})), ("update", (name,)), ("get", (name,))]:
        with pytest.raises(ValidationError) as caught:
            await call(queue, method, *args)
        assert caught.value.field == "name"
    assert queue.transport.requests == []


@pytest.mark.parametrize(
    "name",
    ["a", "_", "welcome-42", "user:42:welcome", "digest@ada@x.io", "welcome:ada+news@x.io",
     "v1.2_3", "x" * 200],
)
def test_good_job_names(name: str) -> None:
    assert validate_name(name) == name


def test_a_bad_queue_name_fails_naming_queue() -> None:
    with pytest.raises(ValidationError) as caught:
        Queue("no/slash", settings=SETTINGS, transport=FakeTransport())
    assert caught.value.field == "queue"


async def test_untyped_payload_is_made_json_able(make_queue: Any) -> None:
    class Point(BaseModel):
        x: int

    queue = make_queue(ApiResponse(200, job_json()))
    when = datetime(2025, 1, 1, tzinfo=UTC)
    await call(queue, "enqueue", "welcome", {"at": when, "point": Point(x=1), "tags": ("a",)})
    assert sent(queue).json["payload"] == {
        "at": "2025-01-01T00:00:00Z",
        "point": {"x": 1},
        "tags": ["a"],
    }


async def test_a_payload_that_is_not_json_fails_locally(make_queue: Any) -> None:
    queue = make_queue()
    with pytest.raises(ValidationError) as caught:
        await call(queue, "enqueue", "welcome", {"handle": object()})
    assert caught.value.field == "payload"
    assert queue.transport.requests == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (float("inf"), "inf is not a finite number; JSON numbers must be finite"),
        (float("-inf"), "-inf is not a finite number"),
        ({"a": float("nan")}, "at payload.a: nan is not a finite number"),
        ([1, [2, {"x": float("inf")}]], "at payload[1][1].x: inf is not a finite number"),
        pytest.param(
            10**5000, "a number is too long (more than 4300 digits); send it as a string",
            id="5000-digit-int",
        ),
        (b"\xff", (
            "holds bytes that are not UTF-8 text; JSON carries text only: decode them, "
            "or send base64.b64encode(data).decode('ascii')")),
        ({"blob": b"\xfe\x00"}, "holds bytes that are not UTF-8 text"),
        pytest.param("a\ud800", "holds a lone surrogate (\\ud800), which is not Unicode text",
                     id="lone-surrogate"),
        pytest.param({"k": ["ok", "\U0001f692", "\udc00"]},
                     "at payload.k[2]: holds a lone surrogate (\\udc00)",
                     id="nested-lone-surrogate"),
    ],
)
async def test_a_payload_json_cannot_carry_is_a_validation_error(
    make_queue: Any, payload: Any, message: str
) -> None:
    queue = make_queue()
    for method in ("enqueue", "update"):
        with pytest.raises(ValidationError) as caught:
            await call(queue, method, "welcome", payload)
        assert caught.value.field == "payload"
        assert caught.value.reason.startswith(message)
    assert queue.transport.requests == []


async def test_a_typed_payload_with_nan_is_a_validation_error(make_queue: Any) -> None:
    class Reading(BaseModel):
        value: float

    queue = make_queue(payload_type=Reading)
    with pytest.raises(ValidationError) as caught:
        await call(queue, "enqueue", "r", Reading(value=float("nan")))
    assert caught.value.field == "payload"
    assert caught.value.reason.startswith("at payload.value: nan is not a finite number")


async def test_finite_floats_and_big_ints_still_go(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    await call(queue, "enqueue", "welcome", {"f": 1e308, "i": 10**100, "t": True, "e": "🚒"})
    assert sent(queue).json["payload"] == {"f": 1e308, "i": 10**100, "t": True, "e": "🚒"}


@pytest.mark.parametrize(
    ("options", "field"),
    [({"retries": "3"}, "retries"), ({"retries": True}, "retries"),
     ({"enabled": "yes"}, "enabled"), ({"enabled": 1}, "enabled"),
     ({"runEvery": "P1D "}, "run_every"), ({"run_at": " 2025-01-01T09:00Z"}, "run_at")],
)
async def test_options_are_strict(make_queue: Any, options: Any, field: str) -> None:
    queue = make_queue(payload_type=None)
    for method, args in [("enqueue", ("welcome", {}, options)),
                         ("update", ("welcome", UNSET, options))]:
        with pytest.raises(ValidationError) as caught:
            await call(queue, method, *args)
        assert caught.value.field == field
    assert queue.transport.requests == []


def test_the_queue_and_the_server_share_one_name_rule() -> None:
    from taskless.core import api, names, receiver

    assert validate_name is names.validate_name
    assert receiver.validate_name is names.validate_name
    assert api.validate_name is names.validate_name


# -- typed payloads --------------------------------------------------------------------------


class Email(BaseModel):
    to: str
    send_at: datetime | None = None


async def test_typed_queue_validates_and_serialises_the_payload(make_queue: Any) -> None:
    stored = {"to": "ada@example.com", "send_at": "2025-01-01T09:00:00Z"}
    queue = make_queue(ApiResponse(200, job_json(payload=stored)), payload_type=Email)
    email = Email(to="ada@example.com", send_at=datetime(2025, 1, 1, 9, tzinfo=UTC))
    job = await call(queue, "enqueue", "welcome", email)
    assert sent(queue).json["payload"] == stored
    assert job.payload == email


async def test_typed_queue_accepts_a_dict_that_validates(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()), payload_type=Email)
    job = await call(queue, "enqueue", "welcome", {"to": "ada@example.com"})
    assert sent(queue).json["payload"] == {"to": "ada@example.com", "send_at": None}
    assert job.payload == Email(to="ada@example.com")


async def test_typed_queue_refuses_a_bad_payload_before_any_request(make_queue: Any) -> None:
    queue = make_queue(payload_type=Email)
    with pytest.raises(ValidationError) as caught:
        await call(queue, "enqueue", "welcome", {"to": ["not", "a", "string"]})
    assert caught.value.field == "payload.to"
    with pytest.raises(ValidationError) as caught:
        await call(queue, "update", "welcome", {"send_at": "soon"})
    assert caught.value.field == "payload.to"
    assert queue.transport.requests == []


async def test_typed_queue_with_a_non_model_type(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json(payload=[1, 2])), payload_type=list[int])
    job = await call(queue, "enqueue", "welcome", ["1", 2])
    assert sent(queue).json["payload"] == [1, 2]
    assert job.payload == [1, 2]
    with pytest.raises(ValidationError, match="payload.0"):
        await call(queue, "enqueue", "welcome", ["one"])


async def test_a_stored_payload_that_no_longer_matches_is_an_error(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json(payload={"recipient": "x"})), payload_type=Email)
    with pytest.raises(ValidationError, match="stored payload") as caught:
        await call(queue, "get", "welcome")
    assert caught.value.field == "payload.to"


async def test_delete_says_the_job_is_gone_when_its_payload_no_longer_matches(
    make_queue: Any,
) -> None:
    queue = make_queue(ApiResponse(200, job_json(payload={"recipient": "x"})), payload_type=Email)
    with pytest.raises(ValidationError, match="the job was deleted"):
        await call(queue, "delete", "welcome")


@pytest.mark.parametrize("cls", [Queue, AsyncQueue])
def test_subscripted_queue_is_typed(cls: Any) -> None:
    queue = cls[Email]("emails", settings=SETTINGS, transport=FakeTransport())
    assert queue.payload_type is Email
    assert cls("emails", settings=SETTINGS, transport=FakeTransport()).payload_type is None


# -- update ----------------------------------------------------------------------------------


async def test_update_sends_only_the_options_given(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json(retries=2)), defaults={"headers": {"a": "b"}})
    job = await call(queue, "update", "welcome", options={"retries": 2})
    assert sent(queue) == ApiRequest(
        "PATCH", "/v1/queues/emails/jobs/welcome", {"options": {"retries": 2}}
    )
    assert job.options.retries == 2


async def test_update_sends_only_the_payload_given(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    await call(queue, "update", "welcome", {"to": "bob@example.com"})
    assert sent(queue).json == {"payload": {"to": "bob@example.com"}}


async def test_update_can_set_the_payload_to_null(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    await call(queue, "update", "welcome", None, {"runAt": "2025-06-01T00:00:00+00:00"})
    assert sent(queue).json == {"payload": None, "options": {"runAt": "2025-06-01T00:00:00Z"}}


async def test_update_with_nothing_sends_an_empty_patch(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    await call(queue, "update", "welcome", UNSET, {})
    assert sent(queue).json == {}


async def test_update_of_a_missing_job_raises_job_not_found(make_queue: Any) -> None:
    queue = make_queue(NOT_FOUND)
    with pytest.raises(JobNotFound) as caught:
        await call(queue, "update", "ghost", options={"enabled": False})
    assert (caught.value.queue, caught.value.name) == ("emails", "ghost")
    assert len(queue.transport.requests) == 1


# -- get and delete --------------------------------------------------------------------------


async def test_get(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    job = await call(queue, "get", "welcome")
    assert sent(queue) == ApiRequest("GET", "/v1/queues/emails/jobs/welcome")
    assert job.name == "welcome"


async def test_get_of_a_missing_job_is_none(make_queue: Any) -> None:
    assert await call(make_queue(NOT_FOUND), "get", "ghost") is None


async def test_delete(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, job_json()))
    job = await call(queue, "delete", "welcome")
    assert sent(queue) == ApiRequest("DELETE", "/v1/queues/emails/jobs/welcome")
    assert job.name == "welcome"


async def test_delete_of_a_missing_job_is_none(make_queue: Any) -> None:
    assert await call(make_queue(NOT_FOUND), "delete", "ghost") is None


# -- errors from the job server --------------------------------------------------------------


async def test_422_is_a_validation_error_with_the_servers_field(make_queue: Any) -> None:
    body = error_json("invalid", "endpoint is not allowed", field="endpoint")
    queue = make_queue(ApiResponse(422, body))
    with pytest.raises(ValidationError) as caught:
        await call(queue, "enqueue", "welcome", {})
    assert caught.value.field == "endpoint"
    assert "not allowed" in str(caught.value)


async def test_401_is_a_configuration_error_naming_the_api_key(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(401, error_json("unauthorized", "bad api key")))
    with pytest.raises(ConfigurationError, match="TASKLESS_API_KEY"):
        await call(queue, "get", "welcome")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_a_server_error(make_queue: Any, status: int) -> None:
    queue = make_queue(ApiResponse(status, error_json("unavailable", "database is down")))
    with pytest.raises(ServerError) as caught:
        await call(queue, "enqueue", "welcome", {})
    assert caught.value.status == status
    assert caught.value.error_code == "unavailable"
    assert isinstance(caught.value, TransportError)
    advice = "; try again shortly" if status == 503 else ""
    assert str(caught.value) == f"job server answered {status}: database is down{advice}"


async def test_a_404_that_is_not_a_taskless_error_is_not_a_missing_job(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(404, None))
    with pytest.raises(ServerError, match="TASKLESS_URL"):
        await call(queue, "get", "welcome")


async def test_a_404_on_enqueue_is_a_server_error(make_queue: Any) -> None:
    queue = make_queue(NOT_FOUND)
    with pytest.raises(ServerError):
        await call(queue, "enqueue", "welcome", {})


async def test_a_success_that_is_not_a_job_is_a_server_error(make_queue: Any) -> None:
    queue = make_queue(ApiResponse(200, {"hello": "world"}))
    with pytest.raises(ServerError, match="not a job"):
        await call(queue, "get", "welcome")


# -- construction and lifecycle --------------------------------------------------------------


def test_endpoint_is_base_url_plus_route() -> None:
    def endpoint(**kwargs: Any) -> str:
        return Queue("emails", settings=SETTINGS, transport=FakeTransport(), **kwargs).endpoint

    assert endpoint() == "http://app.test/api/queues/emails"
    assert endpoint(route="/jobs/emails") == "http://app.test/jobs/emails"
    assert endpoint(route="jobs/emails") == "http://app.test/jobs/emails"
    assert endpoint(endpoint="https://x.test/hook") == "https://x.test/hook"
    with pytest.raises(TypeError):
        endpoint(endpoint="https://x.test/hook", route="/hook")


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("notaurl", ("TASKLESS_BASE_URL 'notaurl' is not an http(s) URL; set it to your app's "
                    "public URL, such as 'https://app.example.com'")),
        ("ftp://app.test", "TASKLESS_BASE_URL 'ftp://app.test' is not an http(s) URL"),
        ("http://app.test/sub?x=1", ("TASKLESS_BASE_URL 'http://app.test/sub?x=1' has a query or a "
                                    "fragment, and queue routes are appended")),
        ("http://app.test/#top", "TASKLESS_BASE_URL 'http://app.test/#top' has a query"),
    ],
)
def test_a_base_url_routes_cannot_be_appended_to_names_the_setting(
    base_url: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Queue("emails", settings=SETTINGS.replace(base_url=base_url), transport=FakeTransport())
    assert str(caught.value).startswith(message)


def test_a_base_url_with_a_path_keeps_it() -> None:
    settings = SETTINGS.replace(base_url="https://app.test/shop/")
    queue = Queue("emails", settings=settings, transport=FakeTransport())
    assert queue.endpoint == "https://app.test/shop/api/queues/emails"


def test_url_and_transport_are_exclusive() -> None:
    with pytest.raises(TypeError):
        Queue("emails", settings=SETTINGS, url="http://x.test", transport=FakeTransport())


def test_a_transport_of_the_wrong_kind_is_refused() -> None:
    class SyncOnly(Transport):
        def handle(self, request: ApiRequest) -> ApiResponse:
            return ApiResponse(200)

    with pytest.raises(TypeError, match="AsyncTransport"):
        AsyncQueue("emails", settings=SETTINGS, transport=SyncOnly())  # type: ignore[arg-type]


def test_the_transport_is_chosen_by_url() -> None:
    with Queue("emails", settings=SETTINGS) as queue:
        assert isinstance(queue.transport, HttpTransport)
        assert queue.transport.url == "http://jobs.test"
    with Queue("emails", settings=SETTINGS, url="https://elsewhere.test") as queue:
        assert isinstance(queue.transport, HttpTransport)
        assert queue.transport.url == "https://elsewhere.test"


async def test_the_async_transport_is_chosen_by_url() -> None:
    async with AsyncQueue("emails", settings=SETTINGS) as queue:
        assert isinstance(queue.transport, AsyncHttpTransport)


def test_an_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="TASKLESS_URL"):
        Queue("emails", settings=SETTINGS, url="ftp://jobs.test")


def test_settings_come_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLESS_BASE_URL", "https://shop.example.com")
    monkeypatch.setenv("TASKLESS_URL", "http://127.0.0.1:3999")
    with Queue("emails") as queue:
        assert queue.endpoint == "https://shop.example.com/api/queues/emails"
        assert queue.url == "http://127.0.0.1:3999"


async def test_closing_closes_only_an_owned_transport(kind: str) -> None:
    shared = FakeTransport()
    built = FakeTransport()

    class FakeScheme:
        @hookimpl
        def taskless_transports(self) -> dict[str, Any]:
            return {"fake": lambda url, settings, *, asynchronous: built}

    with registered(FakeScheme()):
        if kind == "sync":
            Queue("emails", settings=SETTINGS, transport=shared).close()
            with Queue("emails", settings=SETTINGS, url="fake://") as queue:
                assert queue.transport is built
        else:
            await AsyncQueue("emails", settings=SETTINGS, transport=shared).aclose()
            async with AsyncQueue("emails", settings=SETTINGS, url="fake://") as aqueue:
                assert aqueue.transport is built
    assert not shared.closed
    assert built.closed


def test_repr() -> None:
    queue = Queue("emails", settings=SETTINGS, transport=FakeTransport())
    assert repr(queue) == "Queue('emails', endpoint='http://app.test/api/queues/emails')"
