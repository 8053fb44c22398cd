"""The transport interface, transport_for, and the httpx transports (over httpx.MockTransport)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import taskless
from taskless.core.errors import ConfigurationError, ServerError, TransportError, ValidationError
from taskless.core.hooks import hookimpl, registered
from taskless.core.http import AsyncHttpTransport, HttpTransport
from taskless.core.queue import AsyncQueue, Queue
from taskless.core.settings import Settings
from taskless.core.transport import (
    ApiRequest,
    ApiResponse,
    AsyncTransport,
    Transport,
    transport_factories,
    transport_for,
)

SETTINGS = Settings(api_key="k-123", url="http://jobs.test", base_url="http://app.test")

Handler = Callable[[httpx.Request], httpx.Response]


def recording(response: httpx.Response) -> tuple[list[httpx.Request], Handler]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return response

    return seen, handler


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the value types and bases ---------------------------------------------------------------


def test_api_response_ok() -> None:
    assert ApiResponse(200).ok and ApiResponse(204).ok
    assert not ApiResponse(302).ok and not ApiResponse(404).ok


def test_base_transports_are_context_managers() -> None:
    class Echo(Transport):
        closed = False

        def handle(self, request: ApiRequest) -> ApiResponse:
            return ApiResponse(200, request.json)

        def close(self) -> None:
            self.closed = True

    with Echo() as echo:
        assert echo.handle(ApiRequest("POST", "/x", {"a": 1})).json == {"a": 1}
    assert echo.closed


@pytest.mark.anyio
async def test_async_base_transport_is_an_async_context_manager() -> None:
    class Echo(AsyncTransport):
        closed = False

        async def handle_async(self, request: ApiRequest) -> ApiResponse:
            return ApiResponse(200, request.json)

        async def aclose(self) -> None:
            self.closed = True

    async with Echo() as echo:
        assert (await echo.handle_async(ApiRequest("GET", "/x"))).status == 200
    assert echo.closed


# -- HttpTransport -----------------------------------------------------------------------


def test_http_transport_sends_auth_user_agent_and_json() -> None:
    seen, handler = recording(httpx.Response(201, json={"ok": True}, headers={"X-Thing": "1"}))
    transport = HttpTransport(
        "http://jobs.test", api_key="k-123", httpx_transport=httpx.MockTransport(handler)
    )
    with transport:
        response = transport.handle(ApiRequest("PUT", "/v1/queues/q/jobs/j", {"payload": [1]}))
    (request,) = seen
    assert request.method == "PUT"
    assert str(request.url) == "http://jobs.test/v1/queues/q/jobs/j"
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.headers["user-agent"] == f"taskless/{taskless.__version__}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"payload": [1]}
    assert response == ApiResponse(201, {"ok": True}, response.headers)
    assert response.headers["x-thing"] == "1"


def test_http_transport_sends_no_body_without_json() -> None:
    seen, handler = recording(httpx.Response(200, json={}))
    with HttpTransport(
        "http://jobs.test", api_key="k", httpx_transport=httpx.MockTransport(handler)
    ) as transport:
        transport.handle(ApiRequest("GET", "/v1/queues/q/jobs/j"))
    assert seen[0].content == b""
    assert "content-type" not in seen[0].headers


def test_http_transport_keeps_a_path_prefix_of_the_url() -> None:
    seen, handler = recording(httpx.Response(200, json={}))
    with HttpTransport(
        "https://example.com/taskless", api_key="k", httpx_transport=httpx.MockTransport(handler)
    ) as transport:
        transport.handle(ApiRequest("GET", "/v1/queues/q/jobs/j"))
    assert str(seen[0].url) == "https://example.com/taskless/v1/queues/q/jobs/j"


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (httpx.Response(502, text="<html>Bad gateway</html>"), None),
        (httpx.Response(204), None),
        (httpx.Response(200, json=[1, 2]), [1, 2]),
    ],
)
def test_http_transport_bodies(response: httpx.Response, body: Any) -> None:
    with HttpTransport(
        "http://jobs.test", api_key="k", httpx_transport=httpx.MockTransport(lambda _: response)
    ) as transport:
        result = transport.handle(ApiRequest("GET", "/x"))
    assert (result.status, result.json) == (response.status_code, body)


def test_connection_refused_is_a_transport_error_that_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with HttpTransport(url, api_key="k") as transport, pytest.raises(TransportError) as caught:
        transport.handle(ApiRequest("GET", "/healthz"))
    message = str(caught.value)
    assert url in message
    assert "taskless dev" in message
    assert "TASKLESS_URL" in message
    assert not isinstance(caught.value, ServerError)


@pytest.mark.anyio
async def test_async_connection_refused_is_a_transport_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with AsyncHttpTransport(url, api_key="k") as transport:
        with pytest.raises(TransportError, match="taskless dev"):
            await transport.handle_async(ApiRequest("GET", "/healthz"))


@pytest.mark.parametrize(
    ("error", "match"),
    [
        (httpx.ReadTimeout("slow"), "did not answer in time"),
        (httpx.RemoteProtocolError("garbage"), "RemoteProtocolError"),
    ],
)
def test_other_network_failures_are_transport_errors(error: Exception, match: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with (
        HttpTransport(
            "http://jobs.test", api_key="k", httpx_transport=httpx.MockTransport(handler)
        ) as transport,
        pytest.raises(TransportError, match=match) as caught,
    ):
        transport.handle(ApiRequest("GET", "/x"))
    assert "http://jobs.test" in str(caught.value)
    assert caught.value.__cause__ is error


@pytest.mark.anyio
async def test_async_http_transport() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        seen.append(request)
        return httpx.Response(200, json={"ok": 1})

    async with AsyncHttpTransport(
        "http://jobs.test", api_key="k-123", httpx_transport=httpx.MockTransport(handler)
    ) as transport:
        response = await transport.handle_async(ApiRequest("PATCH", "/v1/x", {"options": {}}))
    assert response.json == {"ok": 1}
    assert seen[0].headers["authorization"] == "Bearer k-123"
    assert json.loads(seen[0].content) == {"options": {}}


# -- a queue over HTTP: status mapping end to end --------------------------------------------


def error_response(
    status: int, code: str, message: str, field: str | None = None
) -> httpx.Response:
    error: dict[str, str] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return httpx.Response(status, json={"error": error})


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        (error_response(401, "unauthorized", "bad key"), ConfigurationError, "TASKLESS_API_KEY"),
        (error_response(422, "invalid", "bad", "options.retries"), ValidationError, "retries"),
        (error_response(503, "unavailable", "db down"), ServerError, "db down"),
        (httpx.Response(500, text="Internal Server Error"), ServerError, "TASKLESS_URL"),
    ],
)
def test_queue_over_http_maps_error_statuses(
    response: httpx.Response, error: type[Exception], match: str
) -> None:
    transport = HttpTransport(
        "http://jobs.test", api_key="k", httpx_transport=httpx.MockTransport(lambda _: response)
    )
    queue = Queue("emails", settings=SETTINGS, transport=transport)
    with transport, pytest.raises(error, match=match):
        queue.enqueue("welcome", {})


@pytest.mark.anyio
async def test_async_queue_over_http_get_missing_is_none() -> None:
    response = error_response(404, "not_found", "no job")
    transport = AsyncHttpTransport(
        "http://jobs.test", api_key="k", httpx_transport=httpx.MockTransport(lambda _: response)
    )
    async with transport, AsyncQueue("emails", settings=SETTINGS, transport=transport) as queue:
        assert await queue.get("welcome") is None


# -- transport_for ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:3001", "https://jobs.example.com", "HTTP://x"])
def test_http_urls_get_the_http_transports(url: str) -> None:
    with transport_for(url, SETTINGS, asynchronous=False) as sync_transport:
        assert isinstance(sync_transport, HttpTransport)
        assert sync_transport.url == url
    async_transport = transport_for(url, SETTINGS, asynchronous=True)
    assert isinstance(async_transport, AsyncHttpTransport)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://jobs.test", "has the scheme 'ftp'"),
        ("localhost:3001", "has no scheme"),
        ("", "has no scheme"),
    ],
)
def test_an_unknown_scheme_names_the_setting_and_the_known_schemes(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        transport_for(url, SETTINGS, asynchronous=False)
    message = str(caught.value)
    assert "TASKLESS_URL" in message
    assert problem in message
    assert "http://, https://, memory://" in message  # taskless.testing registers memory://


def test_without_the_fake_registered_memory_urls_say_where_it_comes_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import taskless.core.transport as transport_module

    http_only = {k: v for k, v in transport_module.transport_factories().items() if k != "memory"}
    monkeypatch.setattr(transport_module, "transport_factories", lambda: http_only)
    with pytest.raises(ConfigurationError, match="comes from taskless.testing"):
        transport_for("memory://", SETTINGS, asynchronous=False)


class _Dummy(Transport, AsyncTransport):
    def __init__(self, url: str) -> None:
        self.url = url

    def handle(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(200)

    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(200)


class DummyPlugin:
    """A third-party transport: serves dummy:// through the hook."""

    @hookimpl
    def taskless_transports(self) -> dict[str, Any]:
        return {"dummy": lambda url, settings, *, asynchronous: _Dummy(url)}


def test_a_plugin_adds_a_scheme() -> None:
    with registered(DummyPlugin()):
        assert {"http", "https", "dummy"} <= set(transport_factories())
        transport = transport_for("dummy://", SETTINGS, asynchronous=True)
        assert isinstance(transport, _Dummy)
    assert "dummy" not in transport_factories()


def test_a_later_plugin_overrides_a_builtin_scheme() -> None:
    class Replacement:
        @hookimpl
        def taskless_transports(self) -> dict[str, Any]:
            return {"HTTP": lambda url, settings, *, asynchronous: _Dummy(url)}

    with registered(Replacement()):
        assert isinstance(transport_for("http://x", SETTINGS, asynchronous=False), _Dummy)
    assert isinstance(transport_for("http://x", SETTINGS, asynchronous=False), HttpTransport)


def test_a_plugin_returning_the_wrong_kind_of_transport_is_a_configuration_error() -> None:
    class SyncOnly(Transport):
        def handle(self, request: ApiRequest) -> ApiResponse:
            return ApiResponse(200)

    class Plugin:
        @hookimpl
        def taskless_transports(self) -> dict[str, Any]:
            return {"sync": lambda url, settings, *, asynchronous: SyncOnly()}

    with registered(Plugin()):
        assert isinstance(transport_for("sync://", SETTINGS, asynchronous=False), SyncOnly)
        with pytest.raises(ConfigurationError, match="not an AsyncTransport"):
            transport_for("sync://", SETTINGS, asynchronous=True)


@pytest.mark.parametrize("key", ["ключ", "key\r\nx-evil: 1", " padded-key ", "tab\tkey"])
@pytest.mark.parametrize("transport", [HttpTransport, AsyncHttpTransport])
def test_an_api_key_no_header_can_carry_names_the_setting(key: str, transport: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        transport("http://127.0.0.1:3001", api_key=key)
    assert str(caught.value).startswith("TASKLESS_API_KEY holds characters an HTTP header cannot")
    assert key not in str(caught.value)
    with pytest.raises(ConfigurationError, match="^TASKLESS_API_KEY holds"):
        Queue("emails", settings=Settings(api_key=key, url="http://127.0.0.1:3001"))


def test_a_url_that_is_not_a_string_is_a_type_error_saying_what_it_should_be() -> None:
    with pytest.raises(TypeError) as caught:
        Queue("emails", url=5)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "the job server's URL is a string such as 'http://127.0.0.1:3001', not int"
    )
