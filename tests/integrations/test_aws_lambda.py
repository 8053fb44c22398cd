"""What the AWS Lambda integration adds to the receiver contract: event sources recognised from
their events, bodies and headers read as each source sends them, answers in each source's
shape, a clear answer to any other event, and a small import."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.errors import ConfigurationError, ValidationError
from taskless.core.models import JobMeta
from taskless.core.queue import Queue
from taskless.core.signing import signed_headers
from taskless.integrations.aws_lambda import (
    EVENT_SOURCES,
    QueueHandler,
    Taskless,
    infer_source,
)

from .conftest import NOW, SECRET, SETTINGS, load_event
from .recording import RecordingTransport, recording_transport
from .test_receiver_contract import PAYLOAD, body_for


class Email(BaseModel):
    to: str


@pytest.fixture
def taskless() -> Taskless:
    return Taskless(settings=SETTINGS, clock=lambda: NOW)


@pytest.fixture
def received(taskless: Taskless) -> list[tuple[Any, JobMeta]]:
    calls: list[tuple[Any, JobMeta]] = []

    @taskless.queue("emails")
    def handler(payload: Any, meta: JobMeta) -> str:
        calls.append((payload, meta))
        return meta.run_id

    return calls


def delivery(run_id: str = "run_lambda") -> tuple[bytes, dict[str, str]]:
    body = body_for("emails")
    return body, signed_headers(body, SECRET, msg_id=run_id, timestamp=NOW)


def title(headers: dict[str, str]) -> dict[str, str]:
    return {"-".join(p.capitalize() for p in k.split("-")): v for k, v in headers.items()}


def rest_event(body: str, *, headers: dict[str, str], base64_body: bool = False) -> dict[str, Any]:
    event = load_event("apigw_rest")
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["body"], event["isBase64Encoded"] = body, base64_body
    return event


def v2_event(name: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    event = load_event(name)
    event["headers"] = {k.lower(): v for k, v in headers.items()}
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def answer(response: dict[str, Any]) -> Any:
    body = response["body"]
    return json.loads(base64.b64decode(body) if response["isBase64Encoded"] else body)


# --- the same delivery, every way it can arrive ----------------------------------------------


def test_one_delivery_verifies_in_every_event_shape(
    taskless: Taskless, received: list[tuple[Any, JobMeta]]
) -> None:
    body, headers = delivery()
    events = {
        "v1, title case, multiValueHeaders, raw body": rest_event(
            body.decode("utf-8"), headers=title(headers)
        ),
        "v1, base64 body": rest_event(
            base64.b64encode(body).decode(), headers=title(headers), base64_body=True
        ),
        "v2, lower case, base64 body": v2_event("apigw_http", body, headers),
        "Function URL, lower case, base64 body": v2_event("function_url", body, headers),
    }
    for label, event in events.items():
        response = taskless.handler(json.loads(json.dumps(event)), None)
        assert response["statusCode"] == 200, (label, response)
        assert answer(response) == {"ok": True, "result": "run_lambda"}
    assert len(received) == len(events)
    for payload, meta in received:
        assert payload == PAYLOAD
        assert type(payload["n"]) is int and type(payload["price"]) is float
        assert (meta.queue, meta.run_id) == ("emails", "run_lambda")


@pytest.mark.parametrize("shape", ["v1-raw", "v1-base64", "v2", "function-url"])
def test_one_byte_changed_is_401(
    taskless: Taskless, received: list[tuple[Any, JobMeta]], shape: str
) -> None:
    body, headers = delivery()
    tampered = body.replace(b'"price":10.5', b'"price":10.6')
    assert tampered != body and len(tampered) == len(body)
    event = {
        "v1-raw": lambda: rest_event(tampered.decode(), headers=title(headers)),
        "v1-base64": lambda: rest_event(
            base64.b64encode(tampered).decode(), headers=title(headers), base64_body=True
        ),
        "v2": lambda: v2_event("apigw_http", tampered, headers),
        "function-url": lambda: v2_event("function_url", tampered, headers),
    }[shape]()
    response = taskless.handler(event, None)
    assert response["statusCode"] == 401
    assert answer(response)["error"]["code"] == "bad_signature"
    assert received == []


@pytest.mark.parametrize("case", [str.upper, str.lower, str.title])
def test_header_names_in_any_case(
    taskless: Taskless, received: list[tuple[Any, JobMeta]], case: Any
) -> None:
    body, headers = delivery()
    event = load_event("apigw_rest")
    event["headers"] = {case(k): v for k, v in headers.items()}
    event["multiValueHeaders"] = None  # headers only, as a test event or a proxy may send
    event["body"] = body.decode()
    assert taskless.handler(event, None)["statusCode"] == 200


def test_multi_value_headers_alone_and_over_stale_single_values(
    taskless: Taskless, received: list[tuple[Any, JobMeta]]
) -> None:
    body, headers = delivery()
    event = rest_event(body.decode(), headers=title(headers))
    event["headers"] = None
    assert taskless.handler(event, None)["statusCode"] == 200
    event = rest_event(body.decode(), headers=title(headers))
    event["headers"]["Webhook-Signature"] = "v1,c3RhbGU="  # "headers" keeps one value only
    assert taskless.handler(event, None)["statusCode"] == 200


def test_rotation_signatures_survive_multi_value_headers(
    taskless: Taskless, received: list[tuple[Any, JobMeta]]
) -> None:
    body = body_for("emails")
    headers = signed_headers(body, ["whsec_b3RoZXI=", SECRET], timestamp=NOW)
    assert " " in headers["webhook-signature"]  # two signatures, space separated
    event = load_event("alb_multi_value")
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["body"] = base64.b64encode(body).decode()
    assert taskless.handler(event, None)["statusCode"] == 200


# --- recognising events ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "source"),
    [
        ("apigw_rest", "apigw-rest"),
        ("apigw_http", "apigw-http"),
        ("function_url", "function-url"),
        ("alb", "alb"),
        ("alb_multi_value", "alb"),
    ],
)
def test_sources_are_recognised_from_their_events(sample: str, source: str) -> None:
    found = infer_source(load_event(sample))
    assert found is not None and found.name == source
    assert found.name in EVENT_SOURCES


def test_http_api_payload_format_1_is_read_as_rest() -> None:
    event = load_event("apigw_rest")
    event["version"] = "1.0"
    found = infer_source(event)
    assert found is not None and found.name == "apigw-rest"


@pytest.mark.parametrize(
    "event",
    [
        load_event("sqs"),
        load_event("eventbridge_schedule"),
        {},
        {"requestContext": {}},
        {"version": "2.0", "rawPath": "/api/queues/emails"},
        [],
        "ping",
        None,
        42,
    ],
    ids=["sqs", "schedule", "empty", "bare-context", "v2-no-context", "list", "str", "none", "int"],
)
def test_any_other_event_gets_a_clear_400_not_a_traceback(
    taskless: Taskless, event: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="taskless.aws_lambda"):
        response = taskless.handler(event, None)
    assert response["statusCode"] == 400
    assert response["headers"]["content-type"] == "application/json"
    error = answer(response)["error"]
    assert error["code"] == "unsupported_event"
    assert "API Gateway" in error["message"] and "Function URL" in error["message"]
    assert "Traceback" not in response["body"]
    assert "unsupported Lambda event" in caplog.text


@pytest.mark.parametrize(
    ("sample", "change"),
    [
        ("apigw_rest", {"isBase64Encoded": True, "body": "not base64!"}),
        ("apigw_rest", {"body": {"not": "a string"}}),
        ("apigw_rest", {"httpMethod": None}),
        ("apigw_http", {"rawPath": None, "requestContext": {"http": {"method": "POST"}}}),
        ("function_url", {"requestContext": {"domainName": "x.lambda-url.eu-west-1.on.aws",
                                             "http": {}}}),
        ("alb", {"isBase64Encoded": True, "body": "%%%"}),
        ("alb_multi_value", {"path": ""}),
        ("apigw_rest", {"body": "\ud800"}),
    ],
)
def test_malformed_events_of_a_known_source_are_400_in_its_shape(
    taskless: Taskless, received: list[tuple[Any, JobMeta]], sample: str, change: dict[str, Any]
) -> None:
    event = {**load_event(sample), **change}
    response = taskless.handler(event, None)
    assert response["statusCode"] == 400
    assert answer(response)["error"]["code"] == "bad_request"
    if sample.startswith("alb"):
        assert response["statusDescription"] == "400 Bad Request"
    assert received == []


@pytest.mark.parametrize(
    ("sample", "change", "message"),
    [
        ("apigw_rest", {"isBase64Encoded": "true"},
         "the event's 'isBase64Encoded' is not true or false"),
        ("apigw_http", {"headers": {"webhook-timestamp": 123}},
         "the event's header 'webhook-timestamp' does not have a string value"),
        ("alb_multi_value", {"multiValueHeaders": {"webhook-id": "not-a-list"}},
         "the event's multiValueHeaders 'webhook-id' is not a list of strings"),
        ("apigw_rest", {"multiValueHeaders": {"webhook-id": ["a", 1]}},
         "the event's multiValueHeaders 'webhook-id' is not a list of strings"),
    ],
    ids=["base64-flag-a-string", "header-a-number", "multi-not-a-list", "multi-a-number"],
)
def test_wrongly_typed_event_fields_are_400_naming_them(
    taskless: Taskless, received: list[tuple[Any, JobMeta]], sample: str,
    change: dict[str, Any], message: str,
) -> None:
    response = taskless.handler({**load_event(sample), **change}, None)
    assert response["statusCode"] == 400
    assert answer(response)["error"]["code"] == "bad_request"
    assert message in answer(response)["error"]["message"]
    assert received == []


def test_a_missing_body_is_refused_cleanly(taskless: Taskless, received: list[Any]) -> None:
    _, headers = delivery()
    event = load_event("apigw_http")
    event["headers"] = headers
    del event["body"]
    response = taskless.handler(event, None)
    assert response["statusCode"] == 401
    assert received == []


# --- answers ---------------------------------------------------------------------------------


def retry_later_handler(taskless: Taskless) -> None:
    from taskless.core.errors import RetryLater

    @taskless.queue("emails")
    def handler(payload: Any) -> None:
        raise RetryLater(30)


@pytest.mark.parametrize(
    ("sample", "expected_keys"),
    [
        ("apigw_rest", {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}),
        ("apigw_http", {"statusCode", "headers", "body", "isBase64Encoded"}),
        ("function_url", {"statusCode", "headers", "body", "isBase64Encoded"}),
        ("alb", {"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"}),
        ("alb_multi_value",
         {"statusCode", "statusDescription", "multiValueHeaders", "body", "isBase64Encoded"}),
    ],
)
def test_each_source_is_answered_in_its_shape(
    taskless: Taskless, sample: str, expected_keys: set[str]
) -> None:
    retry_later_handler(taskless)
    body, headers = delivery()
    event = load_event(sample)
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    if "multiValueHeaders" in event:
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    else:
        event["headers"] = headers
    response = taskless.handler(event, None)
    assert set(response) == expected_keys
    assert response["statusCode"] == 503
    assert response["isBase64Encoded"] is False
    assert answer(response)["error"] == {
        "code": "retry_later", "message": "retry in 30 s", "retryAfter": 30
    }
    if "headers" in response:
        assert response["headers"]["retry-after"] == "30"
    if "multiValueHeaders" in response:
        assert response["multiValueHeaders"]["retry-after"] == ["30"]
    if "statusDescription" in response:
        assert response["statusDescription"] == "503 Service Unavailable"


def test_rest_event_without_multi_value_headers_gets_headers_only(
    taskless: Taskless, received: list[Any]
) -> None:
    body, headers = delivery()
    event = load_event("apigw_rest")
    event.update(headers=headers, multiValueHeaders=None, body=body.decode())
    response = taskless.handler(event, None)
    assert response["statusCode"] == 200 and "multiValueHeaders" not in response


# --- paths -----------------------------------------------------------------------------------


def test_named_stage_of_an_http_api_is_removed(
    taskless: Taskless, received: list[Any]
) -> None:
    body, headers = delivery()
    event = v2_event("apigw_http", body, headers)
    event["requestContext"]["stage"] = "live"
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/live/api/queues/emails"
    assert taskless.handler(event, None)["statusCode"] == 200


def test_stage_is_kept_on_a_custom_domain_and_base_path_removes_a_mapping() -> None:
    body, headers = delivery()
    event = v2_event("apigw_http", body, headers)
    event["requestContext"]["stage"] = "live"
    event["requestContext"]["domainName"] = "jobs.example.com"
    event["rawPath"] = "/jobs/api/queues/emails"
    plain = Taskless(settings=SETTINGS, clock=lambda: NOW)
    plain.queue("emails")(lambda payload: None)
    assert plain.handler(event, None)["statusCode"] == 404
    mapped = Taskless(settings=SETTINGS, clock=lambda: NOW, base_path="/jobs/")
    mapped.queue("emails")(lambda payload: None)
    assert mapped.handler(event, None)["statusCode"] == 200
    rest = rest_event(body.decode(), headers=headers)
    rest["path"] = "/jobs/api/queues/emails"
    assert mapped.handler(rest, None)["statusCode"] == 200


def test_percent_encoded_paths_are_decoded_where_aws_passes_them_raw() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)
    seen: list[Any] = []
    taskless.queue("digest@alice")(lambda payload: seen.append(payload))
    body = body_for("digest@alice")
    headers = signed_headers(body, SECRET, timestamp=NOW)
    for sample in ("apigw_http", "alb"):
        event = load_event(sample)
        event["headers"], event["body"] = headers, body.decode()
        if sample == "alb":
            event["path"] = "/api/queues/digest%40alice"
        else:
            event["rawPath"] = "/api/queues/digest%40alice"
        assert taskless.handler(event, None)["statusCode"] == 200
    assert len(seen) == 2


def test_custom_route_and_prefix() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW, prefix="/_jobs")
    taskless.queue("emails", route="/hooks/email")(lambda payload: "custom")
    taskless.queue("refunds")(lambda payload: "prefixed")
    for queue, path, result in [
        ("emails", "/hooks/email", "custom"), ("refunds", "/_jobs/refunds", "prefixed")
    ]:
        body = body_for(queue)
        event = load_event("function_url")
        event["headers"] = signed_headers(body, SECRET, timestamp=NOW)
        event["rawPath"], event["body"], event["isBase64Encoded"] = path, body.decode(), False
        response = taskless.handler(event, None)
        assert (response["statusCode"], answer(response)["result"]) == (200, result)


# --- handlers and queues ---------------------------------------------------------------------


def test_async_handler_runs_on_the_sync_path_even_inside_a_running_loop() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)

    @taskless.queue("emails")
    async def handler(payload: Email) -> str:
        await asyncio.sleep(0)
        return payload.to

    body = body_for("emails", {"to": "loop@example.com"})
    event = load_event("alb")
    event["headers"] = signed_headers(body, SECRET, timestamp=NOW)
    event["body"] = body.decode()
    assert answer(taskless.handler(event, None))["result"] == "loop@example.com"

    async def inside_a_loop() -> dict[str, Any]:
        return taskless.handler(event, None)

    assert answer(asyncio.run(inside_a_loop()))["result"] == "loop@example.com"


def test_decorated_handler_stays_callable_and_builds_a_sync_queue_lazily() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)

    @taskless.queue("emails", options={"retries": 1})
    def send_email(payload: Email) -> str:
        """Send it."""
        return payload.to

    assert isinstance(send_email, QueueHandler)
    assert send_email(Email(to="x")) == "x" and send_email.__doc__ == "Send it."
    assert send_email._queue is None
    queue = send_email.queue
    assert isinstance(queue, Queue) and send_email.queue is queue
    assert queue.endpoint == "https://app.example.com/api/queues/emails"
    assert queue.defaults.retries == 1 and queue.payload_type is Email
    taskless.close()
    assert send_email._queue is None
    assert set(taskless.handlers) == {"emails"}


def test_bad_declarations_fail_at_once() -> None:
    taskless = Taskless(settings=SETTINGS)
    with pytest.raises(ValidationError):
        taskless.queue("emails", options={"run_every": "P"})
    with pytest.raises(ConfigurationError):
        taskless.queue("emails")(lambda: None)


@pytest.fixture
def recording() -> Iterator[RecordingTransport]:
    with recording_transport() as transport:
        yield transport


def test_enqueue_from_inside_a_handler(
    recording: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKLESS_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("TASKLESS_URL", "recording://jobs")
    monkeypatch.setenv("TASKLESS_BASE_URL", "https://abc.lambda-url.eu-west-1.on.aws")
    taskless = Taskless(clock=lambda: NOW)  # settings from the function's environment

    @taskless.queue("followups")
    def followup(payload: Email) -> None: ...

    @taskless.queue("emails")
    def send_email(payload: Email) -> str:
        job = followup.enqueue(f"after:{payload.to}", payload, {"run_at": "2030-01-01T00:00Z"})
        return job.name

    body = body_for("emails", {"to": "ada@example.com"})
    event = load_event("function_url")
    event["headers"] = signed_headers(body, SECRET, timestamp=NOW)
    event["body"] = base64.b64encode(body).decode()
    response = taskless.handler(event, None)
    assert answer(response) == {"ok": True, "result": "after:ada@example.com"}
    [request] = recording.requests
    assert request.method == "PUT"
    assert request.path == "/v1/queues/followups/jobs/after:ada@example.com"
    endpoint = "https://abc.lambda-url.eu-west-1.on.aws/api/queues/followups"
    assert request.json["endpoint"] == endpoint
    assert request.json["options"]["runAt"] == "2030-01-01T00:00:00Z"


def test_production_without_a_secret_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLESS_ENV", "production")
    monkeypatch.setenv("TASKLESS_API_KEY", "key")
    monkeypatch.delenv("TASKLESS_SIGNING_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="TASKLESS_SIGNING_SECRET"):
        Taskless()


# --- cold start ------------------------------------------------------------------------------


def test_import_pulls_in_no_web_framework_server_or_sdk() -> None:
    code = (
        "import sys, taskless.integrations.aws_lambda\n"
        "heavy = {'flask', 'fastapi', 'starlette', 'uvicorn', 'werkzeug', 'httpx', 'aiohttp',\n"
        "         'boto3', 'botocore', 'pytest'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


# --- hand-made events, sizes, settings ---------------------------------------------------------


def rest_shaped(context: Any) -> dict[str, Any]:
    """An API Gateway REST event as often written by hand: the fields the request needs, and
    an empty (or no) requestContext."""
    body, headers = delivery()
    event: dict[str, Any] = {
        "httpMethod": "POST", "path": "/api/queues/emails", "headers": title(headers),
        "body": body.decode(), "isBase64Encoded": False,
    }
    if context is not None:
        event["requestContext"] = context
    return event


@pytest.mark.parametrize("context", [{}, None], ids=["empty-context", "no-context"])
def test_a_rest_event_with_an_empty_request_context_is_read_as_rest(
    taskless: Taskless, received: list[tuple[Any, JobMeta]], context: Any
) -> None:
    event = rest_shaped(context)
    found = infer_source(event)
    assert found is not None and found.name == "apigw-rest"
    response = taskless.handler(event, None)
    assert response["statusCode"] == 200, response["body"]
    assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert received[0][1].run_id == "run_lambda"


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"httpMethod": None}, "'httpMethod'"),
        ({"path": 42}, "'path'"),
    ],
)
def test_a_rest_shaped_event_missing_a_field_is_a_bad_request_naming_it(
    taskless: Taskless, received: list[Any], change: dict[str, Any], missing: str
) -> None:
    event = {**rest_shaped({}), **change}
    response = taskless.handler(event, None)
    assert response["statusCode"] == 400
    error = answer(response)["error"]
    assert error == {"code": "bad_request", "message": f"the apigw-rest event has no {missing} string"}
    assert received == []


def test_a_v2_event_without_request_context_is_a_bad_request_naming_the_method(
    taskless: Taskless, received: list[Any]
) -> None:
    body, headers = delivery()
    event = {"version": "2.0", "rawPath": "/api/queues/emails", "headers": headers,
             "body": body.decode(), "isBase64Encoded": False}
    response = taskless.handler(event, None)
    assert response["statusCode"] == 400
    assert answer(response)["error"] == {
        "code": "bad_request",
        "message": "the apigw-http event has no 'requestContext.http.method' string",
    }
    assert received == []


@pytest.mark.parametrize("sample", ["apigw_rest", "apigw_http", "function_url", "alb",
                                    "alb_multi_value"])
@pytest.mark.parametrize("base64_body", [False, True])
def test_a_body_over_max_body_bytes_is_413_in_the_source_shape(
    sample: str, base64_body: bool
) -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW, max_body_bytes=1000)
    seen: list[Any] = []
    taskless.queue("emails")(seen.append)
    for size, status in [(990, 200), (1001, 413)]:
        body = body_for("emails", {"pad": ""})
        body = body_for("emails", {"pad": "x" * (size - len(body))})
        assert len(body) == size
        event = load_event(sample)
        headers = signed_headers(body, SECRET, timestamp=NOW)
        if sample.startswith("alb_multi"):
            event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        else:
            event["headers"] = headers
            event.pop("multiValueHeaders", None)
        if sample.startswith("apigw_") or sample == "function_url":
            event["rawPath"] = "/api/queues/emails"
            event["requestContext"].pop("stage", None)
        event["path"] = "/api/queues/emails"
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
        event["isBase64Encoded"] = base64_body
        response = taskless.handler(event, None)
        assert response["statusCode"] == status, response["body"]
    assert answer(response)["error"]["code"] == "too_large"
    if sample.startswith("alb"):
        assert response["statusDescription"] == "413 Request Entity Too Large"
    assert len(seen) == 1


def test_an_oversized_base64_body_is_refused_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW, max_body_bytes=1000)
    taskless.queue("emails")(lambda payload: None)

    def no_decoding(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("decoded")

    monkeypatch.setattr(base64, "b64decode", no_decoding)
    event = rest_event("A" * 2000, headers={}, base64_body=True)
    response = taskless.handler(event, None)
    assert (response["statusCode"], answer(response)["error"]["code"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TASKLESS_SIGNING_SECRET", "whsec_!!!", "TASKLESS_SIGNING_SECRET is not a valid"),
        ("TASKLESS_SIGNING_SECRET", "12345", "TASKLESS_SIGNING_SECRET is not a valid"),
        ("TASKLESS_PREVIOUS_SIGNING_SECRETS", f"{SECRET},whsec_!!!",
         "TASKLESS_PREVIOUS_SIGNING_SECRETS: entry 2 of 2 is not a valid"),
    ],
)
def test_an_invalid_secret_in_the_environment_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.delenv("TASKLESS_SIGNING_SECRET", raising=False)
    monkeypatch.delenv("TASKLESS_PREVIOUS_SIGNING_SECRETS", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        Taskless()
    assert str(info.value).startswith(message)
    assert "whsec_!!!" not in str(info.value)
