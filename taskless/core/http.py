"""The HTTP transports to a job server, over httpx, and the built-in ``http``/``https`` plugin.

Both keep connections alive between calls, send ``Authorization: Bearer <api key>`` and
``user-agent: taskless/<version>``, and turn network failures into :class:`TransportError`
whose message names the URL and says how to fix it. Statuses are not errors here: the queue
reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import httpx

from .errors import ConfigurationError, TransportError
from .hooks import hookimpl
from .settings import Settings
from .transport import (
    ApiRequest,
    ApiResponse,
    AsyncTransport,
    Transport,
    TransportFactory,
    encode_body,
)

#: Calls to the job server are small and quick; a slow one means something is wrong.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _client_options(
    url: str, api_key: str, timeout: httpx.Timeout | float | None
) -> dict[str, Any]:
    from taskless import __version__

    if not (api_key.isascii() and api_key.isprintable()) or api_key != api_key.strip():
        raise ConfigurationError(
            "TASKLESS_API_KEY holds characters an HTTP header cannot carry (non-ASCII, "
            "control characters or spaces at its ends); set it to the key the job server was "
            "started with"
        )
    return {
        "base_url": url,
        "headers": {
            "authorization": f"Bearer {api_key}",
            "user-agent": f"taskless/{__version__}",
            "accept": "application/json",
        },
        "timeout": timeout,
        "follow_redirects": False,
    }


def _send_options(request: ApiRequest) -> dict[str, Any]:
    options: dict[str, Any] = {"method": request.method, "url": request.path}
    if request.json is not None:
        options["content"] = encode_body(request.json)
        options["headers"] = _JSON_CONTENT
    return options


_JSON_CONTENT: Final = {"content-type": "application/json"}


def _api_response(response: httpx.Response) -> ApiResponse:
    try:
        body = response.json() if response.content else None
    except ValueError:  # not JSON: a proxy's error page, say
        body = None
    return ApiResponse(
        status=response.status_code,
        json=body,
        headers={name.lower(): value for name, value in response.headers.items()},
    )


@contextmanager
def _network_errors(url: str) -> Iterator[None]:
    """Translate httpx's network errors into :class:`TransportError` naming ``url``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransportError(
            f"the job server at {url} did not answer in time ({type(exc).__name__}); "
            f"is it overloaded or unreachable? Check TASKLESS_URL"
        ) from exc
    except httpx.ConnectError as exc:
        raise TransportError(
            f"could not connect to the job server at {url} ({exc}); is the job server "
            f"running? Start one with `taskless dev`, or set TASKLESS_URL to its address"
        ) from exc
    except httpx.UnsupportedProtocol as exc:
        raise ConfigurationError(
            f"TASKLESS_URL {url!r} is not an http:// or https:// URL ({exc})"
        ) from exc
    except httpx.TransportError as exc:
        raise TransportError(
            f"the connection to the job server at {url} failed ({type(exc).__name__}: {exc}); "
            f"check TASKLESS_URL and that a Taskless job server is listening there"
        ) from exc


class HttpTransport(Transport):
    """Calls a job server over HTTP with a keep-alive :class:`httpx.Client` (thread-safe).

    :param url: the job server's base URL (``TASKLESS_URL``), e.g. ``http://127.0.0.1:3001``.
    :param api_key: sent as ``Authorization: Bearer <api_key>`` (``TASKLESS_API_KEY``).
    :param timeout: per request; seconds or an :class:`httpx.Timeout`.
    :param httpx_transport: an httpx transport to send through (proxies, TLS settings, or
        :class:`httpx.MockTransport` in tests).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        httpx_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._client = httpx.Client(
            **_client_options(url, api_key, timeout), transport=httpx_transport
        )

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> HttpTransport:
        """A transport to ``url`` (default ``settings.url``) with ``settings.api_key``."""
        return cls(url or settings.url, api_key=settings.require_api_key())

    def handle(self, request: ApiRequest) -> ApiResponse:
        with _network_errors(self.url):
            return _api_response(self._client.request(**_send_options(request)))

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"HttpTransport({self.url!r})"


class AsyncHttpTransport(AsyncTransport):
    """Calls a job server over HTTP with a keep-alive :class:`httpx.AsyncClient`.

    Parameters as :class:`HttpTransport`; ``httpx_transport`` is an
    :class:`httpx.AsyncBaseTransport`.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        httpx_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._client = httpx.AsyncClient(
            **_client_options(url, api_key, timeout), transport=httpx_transport
        )

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> AsyncHttpTransport:
        """A transport to ``url`` (default ``settings.url``) with ``settings.api_key``."""
        return cls(url or settings.url, api_key=settings.require_api_key())

    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        with _network_errors(self.url):
            return _api_response(await self._client.request(**_send_options(request)))

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"AsyncHttpTransport({self.url!r})"


def _http_factory(
    url: str, settings: Settings, *, asynchronous: bool
) -> Transport | AsyncTransport:
    if asynchronous:
        return AsyncHttpTransport.from_settings(settings, url)
    return HttpTransport.from_settings(settings, url)


@hookimpl
def taskless_transports() -> dict[str, TransportFactory]:
    """The built-in plugin: ``http://`` and ``https://`` URLs go to a job server."""
    return {"http": _http_factory, "https": _http_factory}
