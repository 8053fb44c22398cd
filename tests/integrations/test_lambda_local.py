"""The local Lambda front of ``taskless.testing.lambda_local``: events shaped like AWS's, responses
read like AWS reads them, and a real HTTP server around a handler."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from taskless.core.settings import Settings
from taskless.core.signing import signed_headers
from taskless.integrations.aws_lambda import Taskless, infer_source
from taskless.testing.lambda_local import (
    SOURCES,
    LambdaFront,
    LocalContext,
    build_event,
    read_response,
)

from .conftest import load_event
from .test_receiver_contract import PAYLOAD, body_for

SAMPLES = {
    "apigw-rest": "apigw_rest",
    "apigw-http": "apigw_http",
    "function-url": "function_url",
    "alb": "alb",
    "alb-multi": "alb_multi_value",
}
HEADERS = [
    ("content-type", "application/json"),
    ("X-Custom", "one"),
    ("x-custom", "two"),
    ("cookie", "a=1; b=2"),
]


# --- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_events_have_the_shape_of_the_aws_samples(source: str) -> None:
    event = build_event(source, "POST", "/api/queues/emails?x=1", HEADERS, b'{"v":1}')
    found = infer_source(event)
    assert found is not None and found.name == source.removesuffix("-multi")
    sample = load_event(SAMPLES[source])
    optional = {"queryStringParameters", "multiValueQueryStringParameters", "cookies"}
    assert set(sample) - optional <= set(event)
    assert set(sample["requestContext"]) <= set(event["requestContext"])
    assert json.loads(json.dumps(event)) == event  # plain JSON, as the runtime delivers it


def test_rest_event_headers_are_title_case_with_every_value() -> None:
    event = build_event("apigw-rest", "POST", "/p?a=1&a=2", HEADERS, b"{}")
    assert event["multiValueHeaders"]["X-Custom"] == ["one", "two"]
    assert event["headers"]["X-Custom"] == "two"
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["requestContext"]["path"] == "/prod/p" and event["path"] == "/p"


def test_v2_events_lower_case_join_and_move_cookies() -> None:
    event = build_event("apigw-http", "POST", "/p?a=1&a=2", HEADERS, b"{}", stage="live")
    assert event["headers"]["x-custom"] == "one,two"
    assert "cookie" not in event["headers"] and event["cookies"] == ["a=1", "b=2"]
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["rawPath"] == "/live/p" and event["requestContext"]["stage"] == "live"
    url = build_event("function-url", "POST", "/p", HEADERS, b"{}", stage="live")
    assert url["rawPath"] == "/p" and url["requestContext"]["stage"] == "$default"


def test_alb_events_keep_the_raw_query_and_the_header_mode() -> None:
    single = build_event("alb", "GET", "/p?q=a%20b", HEADERS)
    assert single["queryStringParameters"] == {"q": "a%20b"}
    assert single["headers"]["x-custom"] == "two" and "multiValueHeaders" not in single
    multi = build_event("alb-multi", "GET", "/p?q=a%20b", HEADERS)
    assert multi["multiValueHeaders"]["x-custom"] == ["one", "two"] and "headers" not in multi


@pytest.mark.parametrize(
    ("content_type", "body", "forced", "encoded"),
    [
        ("application/json", b'{"a":"\xc3\xbc"}', None, False),
        ("text/plain", b"hi", None, False),
        ("application/octet-stream", b"hi", None, True),
        ("application/json", b"\xff\xfe", None, True),
        ("application/json", b"{}", True, True),
        ("application/octet-stream", b"hi", False, False),
    ],
)
def test_bodies_are_base64_encoded_like_aws(
    content_type: str, body: bytes, forced: bool | None, encoded: bool
) -> None:
    for source in SOURCES:
        event = build_event(
            source, "POST", "/p", {"content-type": content_type}, body, base64_body=forced
        )
        assert event["isBase64Encoded"] is encoded
        text = event["body"]
        assert (base64.b64decode(text) if encoded else text.encode()) == body


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="apigw-rest"):
        build_event("sqs", "POST", "/")
    with pytest.raises(ValueError):
        LambdaFront(lambda event, context: None, "sqs")


# --- responses -------------------------------------------------------------------------------


def test_responses_are_read_as_each_source_reads_them() -> None:
    result = {
        "statusCode": 201,
        "headers": {"x-one": "1"},
        "multiValueHeaders": {"x-many": ["a", "b"]},
        "body": base64.b64encode(b"\x00binary").decode(),
        "isBase64Encoded": True,
        "cookies": ["c=1"],
    }
    rest = read_response("apigw-rest", result)
    assert (rest.status, rest.body) == (201, b"\x00binary")
    assert rest.header("x-many") == "a, b" and rest.header("X-ONE") == "1"
    v2 = read_response("apigw-http", result)
    assert v2.header("x-many") is None and v2.header("set-cookie") == "c=1"
    assert read_response("alb", result).header("x-many") is None
    alb_multi = read_response("alb-multi", result)
    assert alb_multi.header("x-one") is None and alb_multi.header("x-many") == "a, b"


def test_v2_infers_a_response_from_any_json_value() -> None:
    response = read_response("function-url", {"hello": "world"})
    assert response.status == 200 and json.loads(response.body) == {"hello": "world"}
    assert response.header("content-type") == "application/json"


@pytest.mark.parametrize(
    "result",
    [
        None,
        "text",
        {"statusCode": "abc"},
        {"statusCode": 200, "body": 5},
        {"statusCode": 200, "headers": []},
        {"statusCode": 200, "body": "%", "isBase64Encoded": True},
    ],
)
def test_invalid_results_are_refused(result: Any) -> None:
    with pytest.raises(ValueError):
        read_response("apigw-rest", result)


def test_local_context_counts_down() -> None:
    context = LocalContext(timeout=3)
    assert 0 < context.get_remaining_time_in_millis() <= 3000
    assert context.invoked_function_arn.endswith(":function:taskless-local")


# --- the server ------------------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[LambdaFront]:
    """A front whose handler answers with what it received (and fails on request)."""

    def handler(event: dict[str, Any], context: Any) -> Any:
        if event.get("httpMethod") == "DELETE":
            raise RuntimeError("boom")
        if event.get("httpMethod") == "PATCH":
            return {"no": "statusCode"}
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json", "x-request-id": context.aws_request_id},
            "body": json.dumps({"event": event}),
            "isBase64Encoded": False,
        }

    with LambdaFront(handler, "apigw-rest", stage="v1") as front:
        yield front


def test_front_calls_the_handler_with_the_event(echo: LambdaFront) -> None:
    response = httpx.post(echo.url + "/a/b?x=1", content=b'{"k":"v"}',
                          headers={"content-type": "application/json"})
    assert response.status_code == 200 and response.headers["x-request-id"]
    event = response.json()["event"]
    assert (event["httpMethod"], event["path"], event["body"]) == ("POST", "/a/b", '{"k":"v"}')
    assert event["requestContext"]["path"] == "/v1/a/b"
    assert event["queryStringParameters"] == {"x": "1"}


def test_front_reads_chunked_bodies(echo: LambdaFront) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"part":'
        yield b'"two"}'

    response = httpx.post(echo.url + "/c", content=chunks(),
                          headers={"content-type": "application/json"})
    assert response.json()["event"]["body"] == '{"part":"two"}'


def test_front_answers_502_when_the_handler_fails(
    echo: LambdaFront, capsys: pytest.CaptureFixture[str]
) -> None:
    assert httpx.delete(echo.url + "/x").status_code == 502
    assert "RuntimeError: boom" in capsys.readouterr().err
    assert httpx.patch(echo.url + "/x").status_code == 502  # not a response object


def test_head_gets_no_body(echo: LambdaFront) -> None:
    response = httpx.head(echo.url + "/x")
    assert response.status_code == 200 and response.content == b""


FRONTS = [(source, None) for source in SOURCES] + [
    ("apigw-rest", "live"), ("apigw-http", "live"), ("apigw-http", "$default")
]


@pytest.mark.parametrize(("source", "stage"), FRONTS)
def test_a_taskless_handler_behind_every_front(source: str, stage: str | None) -> None:
    settings = Settings()
    taskless = Taskless(settings=settings)
    seen: list[Any] = []
    taskless.queue("emails")(lambda payload: seen.append(payload))
    body = body_for("emails")
    headers = signed_headers(body, settings.signing_secret, msg_id="run_front")
    with LambdaFront(taskless.handler, source, stage=stage) as front, httpx.Client() as client:
        ok = client.post(front.url + "/api/queues/emails", content=body, headers=headers)
        tampered = client.post(
            front.url + "/api/queues/emails", content=body.replace(b"10.5", b"10.6"),
            headers=headers,
        )
        wrong_method = client.get(front.url + "/api/queues/emails")
        unknown = client.post(front.url + "/api/queues/nope", content=body, headers=headers)
    assert ok.status_code == 200 and ok.json() == {"ok": True, "result": None}
    assert tampered.status_code == 401
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert unknown.status_code == 404
    assert seen == [PAYLOAD]



# --- stages ----------------------------------------------------------------------------------


def recording_handler(events: list[dict[str, Any]]) -> Any:
    def handler(event: dict[str, Any], context: Any) -> Any:
        events.append(event)
        return {"statusCode": 204, "headers": {}, "body": ""}

    return handler


@pytest.mark.parametrize(
    ("source", "refused"),
    [("apigw-rest", (403, {"message": "Forbidden"})),
     ("apigw-http", (404, {"message": "Not Found"}))],
)
def test_a_named_stage_is_in_the_urls_as_on_aws(
    source: str, refused: tuple[int, dict[str, str]]
) -> None:
    events: list[dict[str, Any]] = []
    with LambdaFront(recording_handler(events), source, stage="prod") as front:
        assert front.url == f"{front.root_url}/prod"
        ok = httpx.post(f"{front.url}/api/queues/emails?x=1", content=b"{}")
        root = httpx.post(f"{front.url}", content=b"{}")
        outside = [
            httpx.post(f"{front.root_url}{path}", content=b"{}")
            for path in ("/api/queues/emails", "/production/api/queues/emails", "/")
        ]
    assert (ok.status_code, root.status_code) == (204, 204)
    for response in outside:
        assert (response.status_code, response.json()) == refused
        assert response.headers["content-type"] == "application/json"
    assert len(events) == 2  # the function was not called for the URLs outside the stage
    event = events[0]
    assert event["requestContext"]["stage"] == "prod"
    if source == "apigw-rest":
        assert event["path"] == "/api/queues/emails"  # without the stage
        assert event["requestContext"]["path"] == "/prod/api/queues/emails"  # with it
        assert event["queryStringParameters"] == {"x": "1"}
        assert (events[1]["path"], events[1]["requestContext"]["path"]) == ("/", "/prod/")
    else:
        assert event["rawPath"] == "/prod/api/queues/emails"  # with the stage
        assert event["requestContext"]["http"]["path"] == "/prod/api/queues/emails"
        assert event["rawQueryString"] == "x=1"


def test_the_default_stage_of_an_http_api_is_not_in_the_urls() -> None:
    events: list[dict[str, Any]] = []
    with LambdaFront(recording_handler(events), "apigw-http", stage="$default") as front:
        assert front.url == front.root_url
        assert httpx.post(f"{front.url}/api/queues/emails").status_code == 204
    assert events[0]["rawPath"] == "/api/queues/emails"
    assert events[0]["requestContext"]["stage"] == "$default"


@pytest.mark.parametrize(
    ("source", "stage", "message"),
    [("function-url", "prod", "function-url has no stages"),
     ("alb", "prod", "alb has no stages"),
     ("apigw-rest", "a/b", "a stage is a name without '/'"),
     ("apigw-rest", "", "a stage is a name")],
)
def test_stages_only_where_aws_has_them(source: str, stage: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LambdaFront(recording_handler([]), source, stage=stage)


@pytest.mark.parametrize("source", ["apigw-rest", "apigw-http"])
def test_the_stage_url_as_taskless_base_url_routes_to_the_queue(source: str) -> None:
    """The documented setup: TASKLESS_BASE_URL is the front's URL, stage included."""
    seen: list[Any] = []
    function: list[Taskless] = []
    with LambdaFront(lambda event, context: function[0].handler(event, context), source,
                     stage="prod") as front:
        settings = Settings(base_url=front.url)
        taskless = Taskless(settings=settings)
        function.append(taskless)
        send = taskless.queue("emails")(seen.append)
        endpoint = send.queue.endpoint
        assert endpoint == f"{front.root_url}/prod/api/queues/emails"
        body = body_for("emails")
        headers = signed_headers(body, settings.signing_secret)
        response = httpx.post(endpoint, content=body, headers=headers)
        taskless.close()
    assert response.status_code == 200, response.text
    assert seen == [PAYLOAD]


# --- the command line ------------------------------------------------------------------------


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from taskless.testing.lambda_local import main

    with pytest.raises(SystemExit) as info:
        main(args)
    code = info.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_here:handler", "no module named 'no_such_module_here'"),
        ("no_such_package.app:handler", "no module named 'no_such_package'"),
        ("json:no_such_handler", "'json' has no attribute 'no_such_handler'"),
        ("app", "expected MODULE:NAME (like app:handler), got 'app'"),
        ("json:__name__", "json:__name__ is not a function (it is str)"),
        ("json:JSONDecoder", "json:JSONDecoder is not a function (it is type)"),
    ],
)
def test_a_bad_handler_is_a_one_line_error(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main([spec, "--port", "0"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m taskless.testing.lambda_local: ")
    assert message in err


def test_an_import_time_setting_error_is_a_one_line_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "badsecret_app.py").write_text(
        "from taskless.integrations.aws_lambda import Taskless\n"
        "taskless = Taskless()\n"
        "handler = taskless.handler\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKLESS_SIGNING_SECRET", "whsec_!!!")
    code, err = run_main(["badsecret_app:handler", "--port", "0"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "cannot import 'badsecret_app': TASKLESS_SIGNING_SECRET is not a valid" in err


def test_a_port_in_use_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_main(["json:loads", "--port", str(port)], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err


def test_stage_for_a_source_without_stages_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run_main(["json:loads", "--source", "alb", "--stage", "prod"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "--stage is for apigw-rest and apigw-http; alb has no stages" in err


def test_the_command_line_front_prints_the_stage_url(tmp_path: Any) -> None:
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "taskless.testing.lambda_local", "json:loads",
         "--source", "apigw-rest", "--stage", "prod", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = banner.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/prod"), banner
        refused = httpx.post(url.removesuffix("/prod") + "/api/queues/emails")
        assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.mark.parametrize(
    ("signum", "ignored"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT", "SIGINT-ignored-by-the-parent", "SIGTERM"],
)
def test_the_command_line_front_stops_on_a_signal(signum: int, ignored: bool) -> None:
    """A background job of a shell starts with SIGINT ignored; the front stops all the same,
    with an idle keep-alive connection open, and exits 0."""
    import socket
    import subprocess
    import sys

    command = [sys.executable, "-m", "taskless.testing.lambda_local", "json:loads",
               "--source", "apigw-rest", "--stage", "prod", "--port", "0"]
    if ignored:  # as a shell starts a background job: SIGINT ignored, kept across exec
        ignore_then_exec = (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        command = [sys.executable, "-c", ignore_then_exec, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        port = int(banner.split(" on http://127.0.0.1:", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert idle.recv(64).startswith(b"HTTP/1.1 403 ")  # outside the stage
            process.send_signal(signum)
            _, err = process.communicate(timeout=10)
        assert (process.returncode, err) == (0, "")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(["json:loads", "--port", port], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        "python -m taskless.testing.lambda_local: error: argument --port: "
        f"{port!r} is not a port: give 0 to 65535"
    )


def test_an_unknown_host_is_a_one_line_error_about_the_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run_main(["json:loads", "--host", "nosuchhost.invalid", "--port", "0"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(
        "python -m taskless.testing.lambda_local: cannot listen on nosuchhost.invalid:0: "
    )
    assert err.endswith("(is --host a name or address of this machine, such as 127.0.0.1?)\n")
