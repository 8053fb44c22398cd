"""How a queue reaches a backend: one request in, one response out.

A :class:`~taskless.core.queue.Queue` turns each method call into an :class:`ApiRequest` for the
job server HTTP API and reads the :class:`ApiResponse`; the transport only carries them. The
HTTP transports (:mod:`taskless.core.http`) talk to a job server; the in-memory fake of
:mod:`taskless.testing` serves the same API in-process. Write your own by subclassing
:class:`Transport` (sync), :class:`AsyncTransport` (async) or both, and offer it for a URL
scheme through the ``taskless_transports`` hook.

``transport_for(url, settings, asynchronous=...)`` picks the transport by the scheme of the URL
(``TASKLESS_URL``): ``http``/``https`` -> the job server, ``memory`` -> the fake.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self, overload
from urllib.parse import urlsplit

from ._frozen import fast_init
from .errors import ConfigurationError
from .settings import DEV_URL, Settings

_BODY_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_body(value: Any) -> bytes:
    """A request body as it is sent: compact UTF-8 JSON (what the job server's 1 MiB limit
    is measured on)."""
    return _BODY_ENCODER.encode(value).encode("utf-8")


@fast_init
@dataclass(frozen=True, slots=True)
class ApiRequest:
    """A call to the job server HTTP API.

    :param method: ``"GET"``, ``"PUT"``, ``"POST"``, ``"PATCH"`` or ``"DELETE"``.
    :param path: the path, from the root of the API (``/v1/queues/emails/jobs/welcome``).
    :param json: the JSON body (camelCase keys), or ``None`` for no body.
    """

    method: str
    path: str
    json: Any = None


@fast_init
@dataclass(frozen=True, slots=True)
class ApiResponse:
    """What the job server answered.

    :param status: the HTTP status code.
    :param json: the decoded JSON body, or ``None`` when the body was empty or not JSON.
    :param headers: the response headers, names in lower case.
    """

    status: int
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


class Transport(abc.ABC):
    """A synchronous transport. Subclasses implement :meth:`handle` and, if they hold
    resources, :meth:`close`. Must be safe to call from several threads at once."""

    @abc.abstractmethod
    def handle(self, request: ApiRequest) -> ApiResponse:
        """Send ``request`` and return the response, whatever its status.

        :raises TransportError: the backend could not be reached.
        """

    def close(self) -> None:
        """Release connections. The transport is not used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncTransport(abc.ABC):
    """An asynchronous transport. Subclasses implement :meth:`handle_async` and, if they hold
    resources, :meth:`aclose`."""

    @abc.abstractmethod
    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        """Send ``request`` and return the response, whatever its status.

        :raises TransportError: the backend could not be reached.
        """

    async def aclose(self) -> None:
        """Release connections. The transport is not used afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class TransportFactory(Protocol):
    """Builds the transport for a URL; offered per scheme by the ``taskless_transports`` hook.

    Returns a :class:`Transport` when ``asynchronous`` is false, an :class:`AsyncTransport`
    when it is true.
    """

    def __call__(
        self, url: str, settings: Settings, *, asynchronous: bool
    ) -> Transport | AsyncTransport: ...


def transport_factories() -> dict[str, TransportFactory]:
    """Every scheme the registered plugins serve, with its factory (the last registered wins)."""
    from .hooks import plugin_manager

    factories: dict[str, TransportFactory] = {}
    # pluggy returns the results of the most recently registered plugin first.
    for offered in reversed(plugin_manager().hook.taskless_transports()):
        factories.update({scheme.lower(): factory for scheme, factory in offered.items()})
    return factories


@overload
def transport_for(url: str, settings: Settings, *, asynchronous: Literal[False]) -> Transport: ...
@overload
def transport_for(
    url: str, settings: Settings, *, asynchronous: Literal[True]
) -> AsyncTransport: ...
@overload
def transport_for(
    url: str, settings: Settings, *, asynchronous: bool
) -> Transport | AsyncTransport: ...
def transport_for(
    url: str, settings: Settings, *, asynchronous: bool
) -> Transport | AsyncTransport:
    """The transport for ``url`` (usually ``TASKLESS_URL``), chosen by its scheme.

    :param url: ``http://127.0.0.1:3001``, ``https://jobs.example.com``, ``memory://``, ...
    :param settings: passed to the factory (API key, ...).
    :param asynchronous: build an :class:`AsyncTransport` rather than a :class:`Transport`.
    :raises ConfigurationError: no registered plugin serves the scheme; the message names
        ``TASKLESS_URL`` and lists the schemes that are served.
    """
    if not isinstance(url, str):
        raise TypeError(
            f"the job server's URL is a string such as {DEV_URL!r}, not {type(url).__name__}"
        )
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    factories = transport_factories()
    factory = factories.get(scheme)
    if factory is None:
        raise ConfigurationError(_unknown_scheme_message(url, scheme, sorted(factories)))
    transport = factory(url, settings, asynchronous=asynchronous)
    wanted = AsyncTransport if asynchronous else Transport
    if not isinstance(transport, wanted):
        raise ConfigurationError(
            f"the transport plugin for {scheme}:// returned {type(transport).__name__}, "
            f"which is not {'an' if asynchronous else 'a'} {wanted.__name__}"
        )
    return transport


def _unknown_scheme_message(url: str, scheme: str, known: list[str]) -> str:
    known_text = ", ".join(f"{s}://" for s in known) or "none"
    if scheme:
        problem = f"TASKLESS_URL {url!r} has the scheme {scheme!r}, which no transport serves"
    else:
        problem = f"TASKLESS_URL {url!r} has no scheme"
    message = (
        f"{problem} (known: {known_text}); "
        f"use the job server's address, such as http://127.0.0.1:3001"
    )
    if "memory" not in known:
        message += (
            "; memory:// (the in-memory fake) comes from taskless.testing, which registers it "
            "through the taskless_transports hook: import taskless.testing first"
        )
    return message
