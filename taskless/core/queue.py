"""Queues: put named jobs on the job server, change them, read them, remove them.

:class:`Queue` (sync) and :class:`AsyncQueue` (async) have the same methods. All their logic
lives in :class:`BaseQueue`, which turns a method call into an :class:`ApiRequest` and the
:class:`ApiResponse` back into a result or an error, without I/O; the two shells only hand the
request to their transport (``handle`` or ``await handle_async``).

Errors (see :mod:`taskless.core.errors`):

* :class:`ValidationError`: bad input, raised before any request when it can be caught
  locally (job name, options, typed payload), else from the job server's 422; ``field``
  names the culprit.
* :class:`JobNotFound`: ``update()`` of a name that has no job.
* :class:`ConfigurationError`: the job server refused the API key (``TASKLESS_API_KEY``).
* :class:`TransportError`: the job server could not be reached; its subclass
  :class:`ServerError`: it answered with an error (503, 5xx, anything unexpected).
"""

from __future__ import annotations

import enum
import functools
import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, Self

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python
from typing_extensions import TypeVar

from ._frozen import fast_init
from .crypto import PayloadCipher, decrypt_payload
from .errors import ConfigurationError, JobNotFound, ServerError, TasklessError, ValidationError
from .hooks import notify
from .jsonvalue import bad_number, find, where
from .models import Job, JobOptions, merge_options, parse_options, validate_job
from .names import validate_name
from .settings import Settings
from .transport import (
    ApiRequest,
    ApiResponse,
    AsyncTransport,
    Transport,
    encode_body,
    transport_for,
)

#: The payload type of a typed queue (``Queue[Model]``); ``Any`` when the queue is untyped.
P = TypeVar("P", default=Any)
T = TypeVar("T", bound=Transport | AsyncTransport)
R = TypeVar("R")

#: What ``options`` and ``defaults`` accept: a :class:`JobOptions`, a dict of option names
#: (``run_at`` or ``runAt``, ...), or ``None``.
OptionsLike = JobOptions | dict[str, Any] | None


class UnsetType(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "Not given": ``update(name)`` leaves the payload alone unless one is passed.
UNSET: Final = UnsetType.UNSET


@fast_init
@dataclass(frozen=True, slots=True)
class _Call(Generic[R]):
    """One API request and what to make of its response."""

    request: ApiRequest
    finish: Callable[[ApiResponse], R]


#: Most jobs in one ``jobs:batch`` request (the job server's limit).
BATCH_SIZE: Final = 1000
#: Most bytes in one request body (the job server's limit, ``api.MAX_BODY_BYTES``).
MAX_BODY_BYTES: Final = 1024 * 1024
_BATCH_FRAME: Final = len(b'{"jobs":[]}')

#: One job of :meth:`Queue.enqueue_many`: ``(name, payload)`` or ``(name, payload, options)``.
BatchItem = tuple[str | None, P] | tuple[str | None, P, OptionsLike]

_PENDING: Final = TasklessError("not sent")


def _batch_item(index: int, item: Any) -> tuple[str | None, Any, Any]:
    if isinstance(item, tuple) and len(item) in (2, 3):
        return item if len(item) == 3 else (*item, None)
    raise TypeError(
        "enqueue_many takes (name, payload) or (name, payload, options) tuples; "
        f"item {index} is {type(item).__name__}"
        + (f" of {len(item)}" if isinstance(item, tuple) else "")
    )


@dataclass(slots=True)
class _BatchPlan(Generic[P]):
    """The results of an ``enqueue_many`` (local errors in place) and its requests."""

    results: list[Job[P] | TasklessError]
    calls: list[tuple[list[int], _Call[list[Job[P] | TasklessError]]]]

    def fill(self, slots: list[int], outcomes: list[Job[P] | TasklessError]) -> None:
        for slot, outcome in zip(slots, outcomes, strict=True):
            self.results[slot] = outcome


@dataclass(frozen=True, slots=True)
class _ErrorBody:
    """The ``{"error": {"code", "message", "field"?}}`` body of an error response."""

    code: str | None
    message: str
    field: str | None

    @classmethod
    def of(cls, response: ApiResponse) -> _ErrorBody:
        error = response.json.get("error") if isinstance(response.json, dict) else None
        if not isinstance(error, dict):
            return cls(None, f"HTTP {response.status} without a Taskless error body", None)

        def text(key: str) -> str | None:
            value = error.get(key)
            return value if isinstance(value, str) else None

        return cls(text("code"), text("message") or f"HTTP {response.status}", text("field"))


class BaseQueue(Generic[T, P]):
    """What :class:`Queue` and :class:`AsyncQueue` share: configuration, validation, request
    building and response reading. No I/O happens here."""

    _transport_class: ClassVar[type[Transport | AsyncTransport]]

    def __init__(
        self,
        name: str,
        *,
        endpoint: str | None = None,
        route: str | None = None,
        url: str | None = None,
        transport: T | None = None,
        settings: Settings | None = None,
        defaults: OptionsLike = None,
        payload_type: type[P] | None = None,
    ) -> None:
        if endpoint is not None and route is not None:
            raise TypeError("pass endpoint or route, not both")
        if url is not None and transport is not None:
            raise TypeError("pass url or transport, not both")
        self.name: str = validate_name(name, field="queue")
        self.settings: Settings = settings or Settings.from_env()
        if endpoint is None:
            path = route or f"/api/queues/{self.name}"
            path = path if path.startswith("/") else f"/{path}"
            endpoint = _base_url(self.settings.base_url) + path
        self.endpoint: str = endpoint
        self.defaults: JobOptions = parse_options(defaults)
        #: Encrypts payloads when ``TASKLESS_ENCRYPTION_KEY`` is set (:mod:`.crypto`).
        self.cipher: PayloadCipher | None = PayloadCipher.from_settings(self.settings)
        self._payload_type = payload_type
        self._adapter: TypeAdapter[Any] | None | UnsetType = UNSET
        self._owns_transport = transport is None
        if transport is None:
            self.url: str | None = url or self.settings.url
            transport = self._new_transport(self.url, self.settings)
        else:
            if not isinstance(transport, self._transport_class):
                raise TypeError(
                    f"{type(self).__name__} needs a transport that is an instance of "
                    f"{self._transport_class.__name__}, not {type(transport).__name__}"
                )
            self.url = getattr(transport, "url", None)
        self._transport: T = transport

    def _new_transport(self, url: str, settings: Settings) -> T:
        raise NotImplementedError

    @property
    def transport(self) -> T:
        """The transport this queue sends its requests through."""
        return self._transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, endpoint={self.endpoint!r})"

    # -- typed payloads ------------------------------------------------------------------

    @property
    def payload_type(self) -> Any:
        """The payload type (``payload_type=`` or ``Queue[Model]``), or ``None`` if untyped."""
        if self._payload_type is not None:
            return self._payload_type
        # Queue[Model](...) records the subscript on the instance after __init__ returns.
        args = typing.get_args(getattr(self, "__orig_class__", None))
        if args and args[0] is not Any and not isinstance(args[0], typing.TypeVar):
            return args[0]
        return None

    def _payload_adapter(self) -> TypeAdapter[Any] | None:
        # Built on first use; a race between threads builds two equal adapters, harmlessly.
        if self._adapter is UNSET:
            payload_type = self.payload_type
            self._adapter = None if payload_type is None else TypeAdapter(payload_type)
        return self._adapter

    def _encode_payload(self, payload: object) -> Any:
        adapter = self._payload_adapter()
        try:
            if adapter is None:
                encoded = to_jsonable_python(payload)
            else:
                encoded = adapter.dump_python(adapter.validate_python(payload), mode="json")
        except PydanticValidationError as exc:
            raise _payload_error(exc, "") from None
        except UnicodeDecodeError:
            raise ValidationError(
                "payload",
                "holds bytes that are not UTF-8 text; JSON carries text only: decode them, or "
                "send base64.b64encode(data).decode('ascii')",
            ) from None
        except (PydanticSerializationError, ValueError) as exc:
            raise ValidationError(
                "payload", f"is not JSON-serialisable: {exc}; send dicts, lists, strings, "
                "numbers, booleans, None, or pydantic models"
            ) from None
        _check_numbers(encoded)
        return encoded

    def _payload_body(self, payload: object) -> dict[str, Any]:
        """``{"payload": ...}``, or ``{"encrypted": ...}`` with an encryption key."""
        encoded = self._encode_payload(payload)
        cipher = self.cipher
        if cipher is not None and cipher.encrypts:
            return {"encrypted": cipher.encrypt(encoded, self.name)}
        return {"payload": encoded}

    def _decode_job(self, response: ApiResponse, *, after: str) -> Job[P]:
        data = response.json
        if isinstance(data, dict) and isinstance(data.get("encrypted"), dict) and (
            "payload" not in data
        ):
            data = dict(data)
            data["payload"] = decrypt_payload(self.cipher, data.pop("encrypted"), self.name)
        try:
            job: Job[Any] = validate_job(data)
        except PydanticValidationError as exc:
            raise ServerError(
                response.status,
                f"the response is not a job ({exc.error_count()} problems, first: "
                f"{_first_problem(exc)}); is TASKLESS_URL a Taskless job server?",
            ) from None
        adapter = self._payload_adapter()
        if adapter is not None:
            try:
                payload = adapter.validate_python(job.payload)
            except PydanticValidationError as exc:
                raise _payload_error(
                    exc,
                    f"the stored payload of job {job.name!r} does not match "
                    f"{_type_name(self.payload_type)}{after}: ",
                ) from None
            job = job.model_copy(update={"payload": payload})
        typed: Job[P] = job  # (no typing.cast call: this runs for every job read)
        return typed

    # -- requests ------------------------------------------------------------------------

    def _jobs_path(self, name: str | None = None) -> str:
        path = f"/v1/queues/{self.name}/jobs"
        return path if name is None else f"{path}/{name}"

    def _enqueue_call(self, name: str | None, payload: P, options: OptionsLike) -> _Call[Job[P]]:
        if name is not None:
            name = validate_name(name)
        body = {
            **self._payload_body(payload),
            "endpoint": self.endpoint,
            "options": self._options_wire(options),
        }
        if name is None:
            request = ApiRequest("POST", self._jobs_path(), body)
        else:
            request = ApiRequest("PUT", self._jobs_path(name), body)

        def finish(response: ApiResponse) -> Job[P]:
            job = self._job_or_none(response)
            if job is None:
                raise ServerError(404, f"the job server has no route {request.path}")
            notify("taskless_enqueued", queue=self.name, job=job)
            return job

        return _Call(request, finish)

    def _options_wire(self, options: OptionsLike) -> dict[str, Any]:
        """The options of an enqueue over the queue's defaults, as sent (only those set)."""
        if not self.defaults.__pydantic_fields_set__ and not isinstance(options, JobOptions):
            # No defaults, and options just validated: merging would give them back as they
            # are. (A JobOptions passed in may have been changed since it was validated:
            # merge_options validates it again.)
            return {} if options is None else parse_options(options).to_wire(only_set=True)
        return merge_options(self.defaults, parse_options(options)).to_wire(only_set=True)

    def _update_call(
        self, name: str, payload: P | UnsetType, options: OptionsLike
    ) -> _Call[Job[P]]:
        name = validate_name(name)
        body: dict[str, Any] = {}
        if payload is not UNSET:
            body.update(self._payload_body(payload))
        if options is not None:
            changes = parse_options(options).to_wire(only_set=True)
            if changes:
                body["options"] = changes

        def finish(response: ApiResponse) -> Job[P]:
            job = self._job_or_none(response)
            if job is None:
                raise JobNotFound(self.name, name)
            return job

        return _Call(ApiRequest("PATCH", self._jobs_path(name), body), finish)

    def _delete_call(self, name: str) -> _Call[Job[P] | None]:
        request = ApiRequest("DELETE", self._jobs_path(validate_name(name)))
        return _Call(
            request, lambda response: self._job_or_none(response, after=" (the job was deleted)")
        )

    def _get_call(self, name: str) -> _Call[Job[P] | None]:
        request = ApiRequest("GET", self._jobs_path(validate_name(name)))
        return _Call(request, self._job_or_none)

    def _batch_plan(self, jobs: Iterable[BatchItem[P]]) -> _BatchPlan[P]:
        """Validate each job here; the valid ones go out in ``jobs:batch`` requests of at most
        :data:`BATCH_SIZE`. A job refused here takes its error's place in the results."""
        results: list[Job[P] | TasklessError] = []
        chunks: list[tuple[list[int], list[dict[str, Any]]]] = []
        size = 0  # of the last chunk's body
        for index, item in enumerate(jobs):
            name, payload, options = _batch_item(index, item)
            try:
                body: dict[str, Any] = {**self._payload_body(payload), "endpoint": self.endpoint}
                try:
                    body["options"] = self._options_wire(options)
                except ValidationError as exc:
                    field = f"options.{exc.field}" if exc.field else "options"
                    raise ValidationError(field, exc.reason) from None
                if name is not None:
                    body["name"] = validate_name(name)
                length = len(encode_body(body))
                if _BATCH_FRAME + length > MAX_BODY_BYTES:
                    raise ValidationError(
                        "payload", f"makes the job {length} bytes of JSON; a job is at most "
                        f"{MAX_BODY_BYTES - _BATCH_FRAME} bytes in a batch (1 MiB per request): "
                        "store large data elsewhere and send a reference to it",
                    )
            except ValidationError as exc:
                results.append(ValidationError(f"jobs[{index}].{exc.field or 'job'}", exc.reason))
                continue
            results.append(_PENDING)
            # Requests of at most BATCH_SIZE jobs and MAX_BODY_BYTES bytes (commas included).
            if (
                not chunks
                or len(chunks[-1][0]) == BATCH_SIZE
                or size + 1 + length > MAX_BODY_BYTES
            ):
                chunks.append(([], []))
                size = _BATCH_FRAME - 1
            chunks[-1][0].append(index)
            chunks[-1][1].append(body)
            size += 1 + length
        calls = [
            (slots, self._batch_call(slots, bodies)) for slots, bodies in chunks
        ]
        return _BatchPlan(results, calls)

    def _batch_call(
        self, slots: list[int], bodies: list[dict[str, Any]]
    ) -> _Call[list[Job[P] | TasklessError]]:
        request = ApiRequest("POST", self._jobs_path() + ":batch", {"jobs": bodies})

        def finish(response: ApiResponse) -> list[Job[P] | TasklessError]:
            if not response.ok:
                raise self._error(response, _ErrorBody.of(response))
            items = response.json.get("results") if isinstance(response.json, dict) else None
            if not isinstance(items, list) or len(items) != len(bodies):
                raise ServerError(
                    response.status,
                    f"the batch answer has no list of {len(bodies)} results; is TASKLESS_URL"
                    f"{self._at()} a Taskless job server?",
                )
            out: list[Job[P] | TasklessError] = []
            for slot, item in zip(slots, items, strict=True):
                status = item.get("status") if isinstance(item, dict) else None
                if not isinstance(status, int):
                    status = 500
                if 200 <= status < 300:
                    job = self._decode_job(ApiResponse(status, item.get("job")), after="")
                    notify("taskless_enqueued", queue=self.name, job=job)
                    out.append(job)
                    continue
                error = _ErrorBody.of(ApiResponse(status, item))
                field = error.field
                if field is not None and field.startswith("jobs["):  # the request's index
                    field = f"jobs[{slot}]." + field.partition("].")[2]
                out.append(self._error(ApiResponse(status, item), replace(error, field=field)))
            return out

        return _Call(request, finish)

    # -- responses -----------------------------------------------------------------------

    def _job_or_none(self, response: ApiResponse, *, after: str = "") -> Job[P] | None:
        """The job of a 2xx response, ``None`` for the job server's "not_found" 404, else
        the error the response stands for."""
        if response.ok:
            return self._decode_job(response, after=after)
        error = _ErrorBody.of(response)
        if response.status == 404 and error.code == "not_found":
            return None
        raise self._error(response, error)

    def _error(self, response: ApiResponse, error: _ErrorBody) -> TasklessError:
        status = response.status
        if status == 422:
            return ValidationError(error.field, error.message)
        if status == 401:
            return ConfigurationError(
                f"the job server{self._at()} refused the API key ({error.message}): set "
                f"TASKLESS_API_KEY to the key the job server was started with"
            )
        message = error.message
        if error.code is None:
            where = f" ({self.url})" if self.url else ""
            message += f"; is TASKLESS_URL{where} a Taskless job server?"
        elif status == 503:
            message += "; try again shortly"
        return ServerError(status, message, error_code=error.code, field=error.field)

    def _at(self) -> str:
        return f" at {self.url}" if self.url else ""


# json.dumps(allow_nan=False), built once.
_STRICT_JSON: Final = json.JSONEncoder(allow_nan=False)


def _strict_json_check() -> Callable[[Any], object]:
    """What ``_STRICT_JSON.encode(value)`` raises for a value, or not: one call to the C
    encoder, built once (``encode`` builds it anew for every value, half of its cost).

    Without the circular-reference check: what is checked comes from pydantic's
    serialisation, which refuses cycles and deep nesting itself."""
    make_encoder = getattr(json.encoder, "c_make_encoder", None)  # (not in typeshed)
    if make_encoder is None:  # pragma: no cover - CPython has the C encoder
        return _STRICT_JSON.encode
    encode = make_encoder(
        None,  # no markers: no circular-reference check
        _STRICT_JSON.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        _STRICT_JSON.key_separator,
        _STRICT_JSON.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    return lambda value: encode(value, 0)


_check_json: Final = _strict_json_check()


@functools.lru_cache(maxsize=64)
def _base_url(value: str) -> str:
    """``TASKLESS_BASE_URL`` without its trailing slash, once it is known to be an http(s) URL
    that queue routes can be appended to."""
    from urllib.parse import urlsplit

    example = "your app's public URL, such as 'https://app.example.com'"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"TASKLESS_BASE_URL {value!r} is not an http(s) URL; set it to "
                                 f"{example}")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigurationError(
            f"TASKLESS_BASE_URL {value!r} has a query or a fragment, and queue routes are "
            f"appended to it: set it to {example} (a path, such as '/shop', is fine)"
        )
    return value.rstrip("/")


def _check_numbers(encoded: Any) -> None:
    """Refuse NaN, infinities and over-long integers, which JSON cannot carry, and strings
    with lone surrogates, which are not Unicode text."""
    if isinstance(encoded, (dict, list)):
        # One C-speed pass over the usual payload; the slower search only when it fails, or
        # when its ASCII output escapes a surrogate (most often half of a valid pair).
        try:
            chunks = _check_json(encoded)
        except RecursionError:
            raise ValidationError("payload", "is nested too deeply") from None
        except ValueError:
            pass
        else:
            text = chunks if isinstance(chunks, str) else "".join(chunks)  # type: ignore[arg-type]
            if "\\ud" in text:
                _check_text(encoded)
            return
    for path, value in find(encoded, lambda item: bad_number(item) is not None, ("payload",)):
        raise ValidationError("payload", where(path, str(bad_number(value))))
    _check_text(encoded)


def _check_text(encoded: Any) -> None:
    for path, text in find(encoded, lambda item: isinstance(item, str), ("payload",)):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = f"\\u{ord(text[exc.start]):04x}"
                raise ValidationError(
                    "payload", where(path, f"holds a lone surrogate ({char}), which is not "
                                     "Unicode text; send valid text"),
                ) from None


def _payload_error(exc: PydanticValidationError, context: str) -> ValidationError:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    field = f"payload.{location}" if location else "payload"
    return ValidationError(field, context + first.get("msg", "invalid value"))


def _first_problem(exc: PydanticValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{location}: {first.get('msg', 'invalid')}"


def _type_name(value: Any) -> str:
    return getattr(value, "__name__", None) or repr(value)


class Queue(BaseQueue[Transport, P]):
    """A named queue of jobs on the job server, used synchronously (Flask, scripts, Django).

    ::

        emails = Queue("emails", defaults={"retries": 3})
        emails.enqueue("welcome:42", {"to": "ada@example.com"}, {"run_at": "2025-01-01T09:00Z"})

    Each job is delivered as a signed ``POST`` to :attr:`endpoint`, where the app's handler for
    this queue receives it.

    :param name: the queue's name (rules of :func:`~taskless.core.names.validate_name`).
    :param endpoint: the full URL deliveries go to. Default: ``TASKLESS_BASE_URL`` followed by
        ``route``.
    :param route: the path of the app's handler for this queue; default ``/api/queues/<name>``.
    :param url: the job server (``TASKLESS_URL``); its scheme picks the transport.
    :param transport: send requests through this transport instead of one built from ``url``.
        The caller owns it: :meth:`close` leaves it open. Share one between queues to share
        connections.
    :param settings: default :meth:`Settings.from_env() <taskless.core.settings.Settings.from_env>`.
    :param defaults: job options every job of this queue starts from; per-job options override
        them, and headers merge (the job's win).
    :param payload_type: validate payloads with this pydantic model, or any type a pydantic
        ``TypeAdapter`` handles, and parse them back into it. ``Queue[Model](...)`` does the
        same.

    The queue is safe to share between threads (a threaded Flask server, say). Close it with
    :meth:`close` or use it as a context manager.
    """

    _transport_class = Transport

    def _new_transport(self, url: str, settings: Settings) -> Transport:
        return transport_for(url, settings, asynchronous=False)

    def _send(self, call: _Call[R]) -> R:
        return call.finish(self._transport.handle(call.request))

    def enqueue(self, name: str | None, payload: P, options: OptionsLike = None) -> Job[P]:
        """Create the job ``name``, or replace it if it exists (an upsert).

        The job is delivered at ``run_at`` (default: as soon as possible), then every
        ``run_every`` if given. Replacing a job replaces its payload and all its options
        (the queue's defaults apply again) and reschedules it; a delivery already in flight
        completes.

        :param name: the job's name, unique in the queue (see :func:`validate_name`); ``None``
            lets the job server generate one, for one-off jobs.
        :param payload: the JSON data the handler receives. A typed queue validates it first;
            otherwise anything pydantic can turn into JSON (dicts, lists, models, datetimes).
        :param options: :class:`JobOptions` or a dict with ``enabled``, ``headers``,
            ``retries``, ``run_at`` (or ``runAt``), ``run_every``, ``timezone``; merged over
            the queue's defaults.
        :return: the job as stored, with its ``state`` and ``next_run_at``.
        :raises ValidationError: a bad name, option or payload (``field`` says which).
        :raises ConfigurationError: the job server refused ``TASKLESS_API_KEY``.
        :raises TransportError: the job server could not be reached (:class:`ServerError`:
            it answered with an error).
        """
        return self._send(self._enqueue_call(name, payload, options))

    def enqueue_many(self, jobs: Iterable[BatchItem[P]]) -> list[Job[P] | TasklessError]:
        """Enqueue many jobs in few requests: ``enqueue`` for each of ``jobs``, given as
        ``(name, payload)`` or ``(name, payload, options)`` tuples.

        Jobs go to the job server in requests of up to 1,000, each stored in one
        transaction. One bad job does not sink the others: the result for each job, in
        order, is its :class:`Job` or the error it met (a :class:`ValidationError` whose
        ``field`` starts with ``jobs[<index>].``).

        :raises TypeError: an item is not such a tuple.
        :raises ConfigurationError, TransportError: as :meth:`enqueue`, for a request as a
            whole; the requests before it are stored.
        """
        plan = self._batch_plan(jobs)
        for slots, call in plan.calls:
            plan.fill(slots, self._send(call))
        return plan.results

    def update(
        self, name: str, payload: P | UnsetType = UNSET, options: OptionsLike = None
    ) -> Job[P]:
        """Change only what is given of the existing job ``name``.

        ``queue.update("digest", options={"enabled": False})`` pauses a job and leaves its
        payload and other options as they were. Changing ``run_at`` or ``run_every``
        reschedules the job.

        :param name: the job's name.
        :param payload: the new payload; leave it out to keep the current one.
        :param options: the options to change; the others keep their values (the queue's
            defaults are not applied).
        :return: the job after the change.
        :raises JobNotFound: no job has that name; nothing is created.
        :raises ValidationError: a bad name, option or payload.
        :raises ConfigurationError: the job server refused ``TASKLESS_API_KEY``.
        :raises TransportError: the job server could not be reached, or answered with an error.
        """
        return self._send(self._update_call(name, payload, options))

    def delete(self, name: str) -> Job[P] | None:
        """Remove the job ``name`` and its run history. A delivery in flight completes.

        :return: the job as it was, or ``None`` if there was no job of that name.
        :raises ValidationError: a bad name.
        :raises ConfigurationError: the job server refused ``TASKLESS_API_KEY``.
        :raises TransportError: the job server could not be reached, or answered with an error.
        """
        return self._send(self._delete_call(name))

    def get(self, name: str) -> Job[P] | None:
        """The job ``name``, or ``None`` if there is none.

        :raises ValidationError: a bad name, or a stored payload that no longer matches the
            queue's payload type.
        :raises ConfigurationError: the job server refused ``TASKLESS_API_KEY``.
        :raises TransportError: the job server could not be reached, or answered with an error.
        """
        return self._send(self._get_call(name))

    def close(self) -> None:
        """Close the transport, unless it was passed in (then its owner closes it)."""
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncQueue(BaseQueue[AsyncTransport, P]):
    """A named queue of jobs on the job server, used with ``await`` (FastAPI, Starlette).

    ::

        emails = AsyncQueue("emails", defaults={"retries": 3})
        await emails.enqueue("welcome:42", {"to": "ada@example.com"})

    The constructor's parameters are those of :class:`Queue`, with an :class:`AsyncTransport`.
    Close it with :meth:`aclose` or use it as an async context manager.
    """

    _transport_class = AsyncTransport

    def _new_transport(self, url: str, settings: Settings) -> AsyncTransport:
        return transport_for(url, settings, asynchronous=True)

    async def _send(self, call: _Call[R]) -> R:
        return call.finish(await self._transport.handle_async(call.request))

    async def enqueue(self, name: str | None, payload: P, options: OptionsLike = None) -> Job[P]:
        """Create the job ``name``, or replace it if it exists (an upsert).

        ``name=None`` lets the job server generate a name (one-off jobs). ``options`` (a
        :class:`JobOptions` or a dict; ``run_at`` or ``runAt``) are merged over the queue's
        defaults. Returns the job as stored. Details and errors: :meth:`Queue.enqueue`.
        """
        return await self._send(self._enqueue_call(name, payload, options))

    async def enqueue_many(
        self, jobs: Iterable[BatchItem[P]]
    ) -> list[Job[P] | TasklessError]:
        """:meth:`Queue.enqueue_many`, awaited."""
        plan = self._batch_plan(jobs)
        for slots, call in plan.calls:
            plan.fill(slots, await self._send(call))
        return plan.results

    async def update(
        self, name: str, payload: P | UnsetType = UNSET, options: OptionsLike = None
    ) -> Job[P]:
        """Change only what is given of the existing job ``name``; returns the changed job.

        Raises :class:`JobNotFound` if there is no such job (nothing is created).
        Details and errors: :meth:`Queue.update`.
        """
        return await self._send(self._update_call(name, payload, options))

    async def delete(self, name: str) -> Job[P] | None:
        """Remove the job ``name`` and its run history; returns it, or ``None`` if there was
        none. Details and errors: :meth:`Queue.delete`."""
        return await self._send(self._delete_call(name))

    async def get(self, name: str) -> Job[P] | None:
        """The job ``name``, or ``None`` if there is none. Errors: :meth:`Queue.get`."""
        return await self._send(self._get_call(name))

    async def aclose(self) -> None:
        """Close the transport, unless it was passed in (then its owner closes it)."""
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
