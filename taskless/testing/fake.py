"""The fake job server: the job server's HTTP API and dispatcher, in memory, on a virtual clock.

It serves the API with the functions the real job server uses (:mod:`taskless.core.api`) and
moves jobs through the same state machine (:mod:`taskless.core.engine`): schedules, retries,
backoff, missed runs, disable/enable and in-flight semantics are the server's own code. What
it replaces is the store (a dict), the clock (a :class:`~taskless.testing.clock.VirtualClock`)
and the network: deliveries are the signed requests the job server sends, handed to the
user's app in-process (or, in direct mode, to its handler functions).

Nothing happens by itself: no thread, no timer. A test moves time and the fake delivers what
falls due on the way, in time order::

    fake = TasklessFake(app, start="2024-01-01T00:00:00Z")
    queue = fake.queue("emails")
    queue.enqueue("welcome", {"to": "ada@example.com"})
    fake.run_due()                       # delivers "welcome" now
    fake.advance("PT1H")                 # delivers what falls due in the next hour
    fake.assert_delivered("welcome", times=1)

Each driving method has an ``*_async`` twin for async tests, which runs ASGI apps and async
handlers on the test's own event loop.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, Literal, Self, overload
from unittest.mock import ANY
from urllib.parse import parse_qs, unquote, urlsplit

from taskless import __version__
from taskless.core import api, hooks
from taskless.core.crypto import PayloadCipher, decrypt_payload
from taskless.core.engine import (
    Backoff,
    JobRecord,
    Outcome,
    finish_attempt,
    run_now,
    start_attempt,
)
from taskless.core.envelope import (
    EncryptedPayload,
    Envelope,
    build_envelope,
    delivery_headers,
)
from taskless.core.errors import DecryptionError, JobNotFound, TasklessError, ValidationError
from taskless.core.models import Job, JobOptions, Run, parse_options
from taskless.core.queue import AsyncQueue, Queue
from taskless.core.retry import RandomSource, parse_retry_after
from taskless.core.settings import Settings
from taskless.core.signing import decode_secret
from taskless.core.timeutil import format_timestamp, parse_timestamp, to_utc
from taskless.core.transport import ApiRequest, ApiResponse

from . import memory
from .clock import VirtualClock, as_timedelta
from .targets import DeliveryRequest, DeliveryResponse, DirectTarget, Target, target_for

__all__ = ["ANY", "ApiCall", "Delivery", "Enqueued", "Scheduled", "TasklessFake"]

Mode = Literal["app", "direct"]

#: Deliveries one driving call makes at most, so a handler that re-enqueues itself for
#: "now" forever fails the test instead of hanging it.
DEFAULT_MAX_DELIVERIES: Final = 1_000_000

_ERROR_SNIPPET: Final = 200
# json.dumps(ensure_ascii=False, separators=(",", ":"), allow_nan=False), built once.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ROUTES_HELP: Final = "see the job server API in docs/architecture.md"

Key = tuple[str, str]


# -- what the fake records ------------------------------------------------------------------


class ApiCall:
    """One request a queue sent to the fake, and the answer (``json`` and ``response`` are
    decoded afresh on each access)."""

    __slots__ = ("_body", "_response", "at", "method", "path", "status")

    def __init__(
        self, method: str, path: str, body: Any, status: int, response: Any, at: datetime
    ) -> None:
        self.method, self.path, self.status, self.at = method, path, status, at
        self._body, self._response = body, response  # body: see _request_body

    @property
    def json(self) -> Any:
        """The request body (``None`` when there was none)."""
        body = self._body
        if type(body) is bytes:
            return json.loads(body) if body else None
        return _copy(body)

    @property
    def response(self) -> Any:
        """The JSON the fake answered."""
        response = self._response
        # A job is kept as its (immutable) record and rendered again: the same JSON.
        return _copy(api.render_job(response) if type(response) is JobRecord else response)

    def __repr__(self) -> str:
        return f"ApiCall({self.method} {self.path} -> {self.status})"


class Enqueued:
    """A job accepted by an ``enqueue`` (create or replace) or a batch."""

    __slots__ = ("_given", "_record", "at", "created")

    def __init__(self, record: JobRecord, given: JobOptions, created: bool, at: datetime) -> None:
        # Options that set nothing are not kept: fewer objects for the garbage collector to
        # walk in tests that enqueue many jobs.
        self._record, self._given = record, given if given.__pydantic_fields_set__ else None
        self.created, self.at = created, at

    @property
    def queue(self) -> str:
        return self._record.queue

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def payload(self) -> Any:
        """The payload as stored (a fresh copy on each access)."""
        return _copy(self._record.payload)

    @property
    def options(self) -> JobOptions:
        """The options as stored (queue defaults merged, ``run_at`` filled)."""
        return self._record.options

    @property
    def given_options(self) -> dict[str, Any]:
        """The options exactly as the request gave them (camelCase, only those set)."""
        return {} if self._given is None else self._given.to_wire(only_set=True)

    def __str__(self) -> str:
        verb = "created" if self.created else "replaced"
        return (
            f"{self.queue}/{self.name} payload={self.payload!r} "
            f"options={_options_text(self.given_options)} ({verb} at {_ts(self.at)})"
        )

    def __repr__(self) -> str:
        return f"Enqueued({self})"


@dataclass(slots=True)
class Delivery:
    """One delivery attempt and how the app answered it (treat it as read-only)."""

    queue: str
    name: str
    run_id: str
    attempt: int
    scheduled_at: datetime
    delivered_at: datetime
    endpoint: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None
    error: str | None
    response_headers: dict[str, str]
    response_body: bytes
    #: When this occurrence will be retried (``None``: it will not be).
    next_retry_at: datetime | None
    #: What the handler raised, when the target can tell (direct mode).
    exception: BaseException | None = None
    #: ``False`` when the job was re-enqueued, changed or deleted while this attempt was in
    #: flight: its result then went to the run history only, as on the job server.
    applied: bool = True
    #: ``True`` when nothing in the fake served the endpoint (no app mounted, no handler).
    unserved: bool = False
    _payload: Any = field(default=None, repr=False, compare=False)

    @property
    def payload(self) -> Any:
        """The payload delivered (a fresh copy on each access)."""
        return _copy(self._payload)

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def response_json(self) -> Any:
        """The app's answer, decoded (``None`` for an empty or non-JSON body)."""
        try:
            return json.loads(self.response_body) if self.response_body else None
        except ValueError:
            return None

    def __str__(self) -> str:
        outcome = str(self.status) if self.status is not None else "no answer"
        if self.error and not self.succeeded:
            outcome += f" ({self.error})"
        retry = f", retry at {_ts(self.next_retry_at)}" if self.next_retry_at else ""
        return (
            f"{self.queue}/{self.name} attempt {self.attempt} at {_ts(self.delivered_at)} "
            f"(scheduled {_ts(self.scheduled_at)}) -> {outcome}{retry}"
        )


@dataclass(frozen=True)
class Scheduled:
    """A job waiting for its next delivery."""

    queue: str
    name: str
    at: datetime
    #: The grid time of the pending occurrence (``at`` is later for a retry).
    scheduled_at: datetime | None
    #: The attempt number the next delivery will carry.
    attempt: int
    payload: Any

    def __str__(self) -> str:
        retry = f" (retry, attempt {self.attempt})" if self.attempt > 1 else ""
        return f"{self.queue}/{self.name} at {_ts(self.at)}{retry}"


def _ts(value: datetime | None) -> str:
    return "-" if value is None else format_timestamp(to_utc(value))


def _options_text(options: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in options.items()) + "}"


class _AnyHttpEndpoint(api.EndpointPolicy):
    """Accepts any http(s) URL with a host: tests deliver in-process, wherever the URL."""

    def check(self, endpoint: Any, field_name: str = "endpoint") -> str:
        if isinstance(endpoint, str) and _is_http_url(endpoint):
            return endpoint
        return super().check(endpoint, field_name)  # raises, saying what is wrong


@lru_cache(maxsize=1024)
def _is_http_url(endpoint: str) -> bool:
    if not endpoint or len(endpoint) > api.MAX_ENDPOINT_LENGTH:
        return False
    try:
        api.EndpointPolicy((endpoint,))  # raises unless an http(s) URL with a host
    except ValidationError:
        return False
    return True


class _Refused(Exception):
    """Internal: an API route answered with an error status of its own."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Bucket:
    """The entries of one due time, in the order they came: entry ``i`` is ``dues[i]`` (as
    written), ``keys[i]`` and ``tokens[i]``; those before ``head`` are done. (Three lists,
    not a list of tuples: no object per entry for the garbage collector to count.)"""

    __slots__ = ("dues", "head", "keys", "tokens")

    def __init__(self) -> None:
        self.dues: list[datetime] = []
        self.keys: list[Key] = []
        self.tokens: list[int] = []
        self.head = 0

    def compact(self) -> None:
        """Let the entries done go."""
        head = self.head
        del self.dues[:head], self.keys[:head], self.tokens[:head]
        self.head = 0


class _DueQueue:
    """When each job is due, in the order the fake delivers: by due time, then first come
    first served (what a heap of ``(due, sequence number, key, token)`` gives, without its
    ``log n`` comparisons per entry: jobs enqueued together share a due time).

    An entry stands while its token is the job's current token (see
    :meth:`TasklessFake._write`); later writes leave it behind, skipped when reached.
    """

    __slots__ = ("_buckets", "_times")

    def __init__(self) -> None:
        self._times: list[datetime] = []  # a heap of the due times that have a bucket
        self._buckets: dict[datetime, _Bucket] = {}  # (equal instants share one)

    def push(self, due: datetime, key: Key, token: int) -> None:
        bucket = self._buckets.get(due)
        if bucket is None:
            bucket = self._buckets[due] = _Bucket()
            heapq.heappush(self._times, due)
        bucket.dues.append(due)
        bucket.keys.append(key)
        bucket.tokens.append(token)

    def first(self, tokens: dict[Key, int]) -> tuple[datetime, Key] | None:
        """The due time (as written) and key of the first entry that stands."""
        times, buckets = self._times, self._buckets
        while times:
            at = times[0]
            bucket = buckets[at]
            keys, head = bucket.keys, bucket.head
            while head < len(keys):
                key = keys[head]
                if tokens.get(key) == bucket.tokens[head]:
                    bucket.head = head
                    if head > 64 and head * 2 > len(keys):
                        bucket.compact()
                        head = 0
                    return bucket.dues[head], key
                head += 1
            heapq.heappop(times)
            del buckets[at]
        return None


@dataclass(slots=True)
class _Attempt:
    started: JobRecord
    request: DeliveryRequest
    target: Target | None
    key: Key  # (queue, name) of the job, as the store holds it


# -- the fake -------------------------------------------------------------------------------


class TasklessFake:
    """An in-memory job server with a virtual clock, for tests.

    :param app: where deliveries go (see :meth:`mount`): a FastAPI/Starlette app, a Flask app,
        an integration's ``Taskless`` object, a target of :mod:`taskless.testing.targets`.
        ``None``: nothing is mounted yet; a delivery nobody serves fails like a refused
        connection.
    :param mode: ``"app"`` (through the app's signed receiver, in-process) or ``"direct"``
        (call the queue's handler function; faster, skips HTTP and signatures).
    :param settings: the signing secret and the defaults of queues made by :meth:`queue`;
        default :meth:`Settings.from_env`, as the app reads them.
    :param start: the virtual time to start at; default: now, to the second.
    :param url: the ``memory://`` URL this fake serves once :meth:`install` ed.
    :param backoff: retry delays (the job server's default: 1 s doubling up to 1 h).
    :param rng: the source of backoff jitter; default ``random.Random(0)``, so runs repeat.
    :param allowed_endpoints: refuse endpoints not under these URL prefixes (as the job
        server in production); default: any http(s) URL.
    :param signing_clock: unix time written in ``webhook-timestamp``; default the real clock,
        which is the one the app's receiver checks signatures against. Pass
        ``fake.clock.time`` when the receiver was built with that clock.
    :param max_deliveries: deliveries one driving call may make before it gives up.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        mode: Mode = "app",
        settings: Settings | None = None,
        start: datetime | str | None = None,
        url: str = "memory://",
        backoff: Backoff | None = None,
        rng: RandomSource | None = None,
        allowed_endpoints: tuple[str, ...] | list[str] | None = None,
        signing_clock: Callable[[], float] = time.time,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        lease: timedelta = timedelta(seconds=120),
    ) -> None:
        # Every argument is checked, and everything that may fail is built, before the first
        # attribute is set: a mistake fails here, naming the argument, not at the first
        # delivery or retry that uses it.
        _check_arguments(
            url=url, mode=mode, settings=settings, backoff=backoff, rng=rng,
            signing_clock=signing_clock, max_deliveries=max_deliveries, lease=lease,
        )
        settings = settings if settings is not None else Settings.from_env()
        clock = VirtualClock(start)
        policy = _endpoint_policy(allowed_endpoints)
        keys = (decode_secret(settings.signing_secret),)
        cipher = PayloadCipher.from_settings(settings)
        self.url = url
        self.mode: Mode = mode
        self.settings = settings
        self.clock = clock
        self.backoff = backoff if backoff is not None else Backoff()
        self.rng: RandomSource = rng if rng is not None else random.Random(0)
        self.policy: api.EndpointPolicy = policy
        self.signing_clock = signing_clock
        self.max_deliveries = max_deliveries
        self.lease = lease
        self._keys = keys
        self._cipher = cipher
        self._lock = threading.RLock()
        self._jobs: dict[Key, JobRecord] = {}
        self._queue_names: set[str] = set()  # valid queue names seen in request paths
        # The run history of each job: the fields of its runs (see _run_fields), oldest first;
        # a job run once keeps the fields alone, not in a list (see _runs_of).
        self._runs: dict[Key, list[dict[str, Any]] | dict[str, Any]] = {}
        self._tokens: dict[Key, int] = {}
        self._due = _DueQueue()
        self._targets: list[tuple[str | None, Target]] = []
        self._handlers: DirectTarget | None = None
        self._calls: list[ApiCall] = []
        self._enqueued: list[Enqueued] = []
        self._deliveries: list[Delivery] = []
        self._driving = False
        self._observed = False
        self._installed: list[tuple[str, TasklessFake | None]] = []
        self._built = True
        if app is not None:
            self.mount(app, mode=mode)

    #: ``False`` until ``__init__`` has set every attribute: what a traceback or a debugger
    #: shows of a fake whose ``__init__`` raised must still have a ``repr``.
    _built = False

    def __repr__(self) -> str:
        if not self._built:
            return "TasklessFake(<not built: its __init__ failed>)"
        return (
            f"TasklessFake({self.url!r}, now={_ts(self.now)}, jobs={len(self._jobs)}, "
            f"deliveries={len(self._deliveries)})"
        )

    # -- setup ------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual time."""
        return self.clock.now()

    def mount(self, app: Any, *, base_url: str | None = None, mode: Mode | None = None) -> Target:
        """Deliver to ``app`` (see :func:`~taskless.testing.targets.target_for`).

        :param base_url: only endpoints under this URL go to ``app``; default: every endpoint
            not claimed by another mount with a ``base_url``.
        :param mode: ``"app"`` or ``"direct"``; default the fake's mode.
        :return: the target built.
        """
        target = target_for(app, mode or self.mode, settings=self.settings)
        with self._lock:
            self._targets = [(p, t) for p, t in self._targets if p != base_url]
            self._targets.append((base_url, target))
            # longest base URL first; the catch-all (None) last
            self._targets.sort(key=lambda item: -1 if item[0] is None else len(item[0]),
                               reverse=True)
        return target

    def handle(self, queue: str, func: Callable[..., Any] | None = None) -> Any:
        """Have ``func`` handle the deliveries of ``queue``, called directly (no app).
        Usable as a decorator: ``@fake.handle("emails")``. Wins over mounted apps."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            with self._lock:
                if self._handlers is None:
                    self._handlers = DirectTarget({}, settings=self.settings)
                self._handlers.add(queue, handler)
            return handler

        return register if func is None else register(func)

    def queue(self, name: str, **kwargs: Any) -> Queue[Any]:
        """A sync :class:`~taskless.core.queue.Queue` that talks to this fake
        (keyword arguments as for ``Queue``; settings default to the fake's)."""
        kwargs.setdefault("settings", self.settings)
        return Queue(name, transport=memory.MemoryTransport(self.url, fake=self), **kwargs)

    def async_queue(self, name: str, **kwargs: Any) -> AsyncQueue[Any]:
        """An :class:`~taskless.core.queue.AsyncQueue` that talks to this fake."""
        kwargs.setdefault("settings", self.settings)
        return AsyncQueue(name, transport=memory.MemoryTransport(self.url, fake=self), **kwargs)

    @property
    def transport(self) -> memory.MemoryTransport:
        """A transport (sync and async) bound to this fake, for ``Queue(transport=...)``."""
        return memory.MemoryTransport(self.url, fake=self)

    def install(self) -> Self:
        """Serve :attr:`url`: queues whose ``TASKLESS_URL`` is that URL now reach this fake.
        Undo with :meth:`uninstall` (or use the fake as a context manager)."""
        previous = memory.activate(self, self.url)
        self._installed.append((self.url, previous))
        return self

    def uninstall(self) -> None:
        """Stop serving :attr:`url`; the fake active before :meth:`install` serves it again."""
        while self._installed:
            url, previous = self._installed.pop()
            memory.deactivate(self, url, previous)

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def reset(self) -> None:
        """Forget every job, run, call and delivery (the clock and mounts stay)."""
        with self._lock:
            self._jobs.clear()
            self._runs.clear()
            self._tokens.clear()
            self._due = _DueQueue()
            self._calls.clear()
            self._enqueued.clear()
            self._deliveries.clear()

    # -- the job server API -------------------------------------------------------------------

    def handle_api(self, request: ApiRequest) -> ApiResponse:
        """Answer one job server API request, as the job server would."""
        raw = _request_body(request.json)
        method = request.method.upper()
        with self._lock:
            now = self.clock.now()
            try:
                status, body = self._route(method, request.path, raw, now)
            except _Refused as refused:
                status, body = refused.status, refused.body
            except TasklessError as exc:
                status, body = api.render_error(exc)
            self._calls.append(ApiCall(method, request.path, raw, status, body, now))
        body = _rendered(body) if type(body) is JobRecord else _detached(body)
        return ApiResponse(status, body, {"content-type": "application/json"})

    def _route(self, method: str, target: str, raw: Any, now: datetime) -> tuple[int, Any]:
        """The status and body of the answer; a job as its record (rendered by the caller)."""
        path, query = target, {}
        if "?" in target or "#" in target:
            parts = urlsplit(target)
            path = parts.path
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = path.strip("/").split("/")
        if "%" in path:
            segments = [unquote(s) for s in segments]
        if (
            len(segments) == 5 and segments[0] == "v1" and segments[1] == "queues"
            and segments[3] == "jobs"
        ):  # /v1/queues/{queue}/jobs/{name}, the usual request, taken first
            self._allow(method, "GET", "PUT", "PATCH", "DELETE")
            key = (self._queue_name(segments[2]), api.validate_path_name(segments[4], "name"))
            return self._job_route(method, key, raw, now)
        if segments == ["healthz"]:
            self._allow(method, "GET")
            return 200, {"status": "ok", "dispatcher": "running"}
        if len(segments) < 4 or segments[:2] != ["v1", "queues"]:
            raise _Refused(404, api.error_body(
                "not_found", f"no route {path!r}; {_ROUTES_HELP}"))
        queue, rest = segments[2], segments[3:]
        if rest == ["jobs"]:
            self._allow(method, "GET", "POST")
            queue = api.validate_path_name(queue, "queue")
            if method == "GET":
                return self._list(queue, query)
            return self._create(queue, raw, now)
        if rest == ["jobs:batch"]:
            self._allow(method, "POST")
            return self._batch(api.validate_path_name(queue, "queue"), raw, now)
        if len(rest) in (2, 3) and rest[0] == "jobs":
            name = rest[1]
            if len(rest) == 2:
                self._allow(method, "GET", "PUT", "PATCH", "DELETE")
                key = (api.validate_path_name(queue, "queue"), api.validate_path_name(name, "name"))
                return self._job_route(method, key, raw, now)
            if rest[2] == "runs":
                self._allow(method, "GET")
                key = (api.validate_path_name(queue, "queue"), api.validate_path_name(name, "name"))
                return self._history(key, query)
            if rest[2] == "run":
                self._allow(method, "POST")
                key = (api.validate_path_name(queue, "queue"), api.validate_path_name(name, "name"))
                return 200, self._write(run_now(self._found(key), now))
        raise _Refused(404, api.error_body("not_found", f"no route {path!r}; {_ROUTES_HELP}"))

    def _queue_name(self, value: str) -> str:
        """``api.validate_path_name(value, "queue")``, remembering the names that passed."""
        if value not in self._queue_names:
            self._queue_names.add(api.validate_path_name(value, "queue"))
        return value

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _Refused(405, api.error_body(
                "method_not_allowed", f"{method} is not allowed here"))

    def _found(self, key: Key) -> JobRecord:
        record = self._jobs.get(key)
        if record is None:
            raise JobNotFound(*key)
        return record

    def _job_route(self, method: str, key: Key, raw: Any, now: datetime) -> tuple[int, Any]:
        queue, name = key
        if method == "GET":
            return 200, self._found(key)
        if method == "DELETE":
            record = self._found(key)
            self._remove(key)
            return 200, record
        if method == "PUT":
            job = api.parse_job_input(_read(raw), self.policy)
            before = self._jobs.get(key)
            after = self._write(api.apply_put(before, queue, name, job, now), key)
            self._log_enqueue(after, job, before is None, now)
            return (201 if before is None else 200), after
        patch = api.parse_job_patch(_read(raw), self.policy)
        return 200, self._write(api.apply_patch(self._jobs.get(key), queue, name, patch, now), key)

    def _create(self, queue: str, raw: Any, now: datetime) -> tuple[int, Any]:
        job = api.parse_job_input(_read(raw), self.policy)
        name = api.generate_name()
        after = self._write(api.apply_put(self._jobs.get((queue, name)), queue, name, job, now))
        self._log_enqueue(after, job, True, now)
        return 201, after

    def _batch(self, queue: str, raw: Any, now: datetime) -> tuple[int, Any]:
        results: list[dict[str, Any]] = []
        for item in api.parse_batch(_read(raw), self.policy):
            if isinstance(item, ValidationError):
                status, body = api.render_error(item)
                results.append({"status": status, **body})
                continue
            name = item.name or api.generate_name()
            before = self._jobs.get((queue, name))
            try:
                after = self._write(api.apply_put(before, queue, name, item, now))
            except TasklessError as exc:
                status, body = api.render_error(exc)
                results.append({"status": status, **body})
                continue
            self._log_enqueue(after, item, before is None, now)
            results.append({"status": 201 if before is None else 200, "job": api.render_job(after)})
        return 200, {"results": results}

    def _list(self, queue: str, query: dict[str, str]) -> tuple[int, Any]:
        limit = api.parse_limit(query.get("limit"))
        after = query.get("after") or None
        names = sorted(n for q, n in self._jobs if q == queue and (after is None or n > after))
        return 200, {"jobs": [api.render_job(self._jobs[(queue, n)]) for n in names[:limit]]}

    def _history(self, key: Key, query: dict[str, str]) -> tuple[int, Any]:
        limit = api.parse_limit(query.get("limit"))
        self._found(key)
        runs = list(reversed(self._runs_of(key)))[:limit]
        return 200, {"runs": [api.render_run(_run(r)) for r in runs]}

    def _log_enqueue(self, record: JobRecord, job: api.JobInput, created: bool, now: datetime) -> None:
        self._enqueued.append(Enqueued(self._plain(record), job.options, created, now))

    # -- the store ----------------------------------------------------------------------------

    def _write(self, record: JobRecord, key: Key | None = None) -> JobRecord:
        """Store ``record`` (under ``key``, its queue and name, when the caller has it)."""
        if key is None:
            key = (record.queue, record.name)
        self._jobs[key] = record
        token = self._tokens.get(key, 0) + 1
        self._tokens[key] = token
        due = record.due_at
        if due is not None:
            self._due.push(due, key, token)
        return record

    def _runs_of(self, key: Key) -> list[dict[str, Any]]:
        """The fields of the runs of a job, oldest first."""
        runs = self._runs.get(key)
        if runs is None:
            return []
        return [runs] if isinstance(runs, dict) else runs

    def _remove(self, key: Key) -> None:
        del self._jobs[key]
        self._runs.pop(key, None)
        self._tokens[key] = self._tokens.get(key, 0) + 1

    def _next_due(self) -> tuple[datetime, Key] | None:
        return self._due.first(self._tokens)

    # -- delivering ---------------------------------------------------------------------------

    @property
    def next_due_at(self) -> datetime | None:
        """When the next delivery is due (``None``: nothing is scheduled)."""
        with self._lock:
            found = self._next_due()
        return None if found is None else found[0]

    def run_due(self) -> list[Delivery]:
        """Deliver everything due now (retries due now included, and jobs that handlers
        enqueue for now); the clock does not move. Returns the deliveries made."""
        return self.advance_to(self.now)

    def advance(self, by: timedelta | float | str) -> list[Delivery]:
        """Move the clock forward by ``by`` (a timedelta, seconds, or ``"PT15M"``),
        delivering every occurrence and retry that falls due on the way, in time order, each
        at its own time. Returns the deliveries made."""
        return self.advance_to(self.now + as_timedelta(by))

    def advance_to(self, when: datetime | str) -> list[Delivery]:
        """Move the clock forward to ``when``, delivering what falls due on the way (see
        :meth:`advance`)."""
        made: list[Delivery] = []
        with self._driving_guard():
            for attempt in self._attempts(self._target_time(when)):
                made.append(self._finish(attempt, self._send(attempt)))
        return made

    async def run_due_async(self) -> list[Delivery]:
        """:meth:`run_due` for async tests (the app runs on the current event loop)."""
        return await self.advance_to_async(self.now)

    async def advance_async(self, by: timedelta | float | str) -> list[Delivery]:
        """:meth:`advance` for async tests."""
        return await self.advance_to_async(self.now + as_timedelta(by))

    async def advance_to_async(self, when: datetime | str) -> list[Delivery]:
        """:meth:`advance_to` for async tests."""
        made: list[Delivery] = []
        with self._driving_guard():
            for attempt in self._attempts(self._target_time(when)):
                made.append(self._finish(attempt, await self._send_async(attempt)))
        return made

    def _target_time(self, when: datetime | str) -> datetime:
        target = to_utc(parse_timestamp(when, field="when"))
        if target < self.now:
            raise ValueError(
                f"the virtual clock never goes back: it is {_ts(self.now)}, not {_ts(target)}"
            )
        return target

    class _Guard:
        def __init__(self, fake: TasklessFake) -> None:
            self.fake = fake

        def __enter__(self) -> None:
            with self.fake._lock:
                if self.fake._driving:
                    raise RuntimeError(
                        "the fake is already delivering: a handler cannot run_due() or "
                        "advance() the clock of the fake that is delivering to it"
                    )
                self.fake._driving = True
                self.fake._observed = _observed()

        def __exit__(self, *exc_info: object) -> None:
            self.fake._driving = False

    def _driving_guard(self) -> TasklessFake._Guard:
        return TasklessFake._Guard(self)

    def _attempts(self, until: datetime) -> Iterator[_Attempt]:
        """The attempts due up to ``until``, each started at its own time; the caller
        delivers each and hands it to :meth:`_finish` before asking for the next."""
        count = 0
        while True:
            with self._lock:
                found = self._next_due()
                if found is None or found[0] > until:
                    break
                due, key = found
                if due > self.clock.now():
                    self.clock._move(to_utc(due))
                count += 1
                if count > self.max_deliveries:
                    raise RuntimeError(
                        f"more than {self.max_deliveries} deliveries in one step: a handler "
                        "keeps enqueuing jobs due now? (raise max_deliveries if intended)"
                    )
                attempt = self._start(key)
            yield attempt
        with self._lock:
            if until > self.now:
                self.clock.set(until)

    def _start(self, key: Key) -> _Attempt:
        now = self.clock.now()
        started = self._write(start_attempt(self._jobs[key], now, self.lease), key)
        target = self._target(started)
        scheduled_at = started.scheduled_at or started.run_at
        encrypted = (
            EncryptedPayload(**started.encrypted) if started.encrypted is not None else None
        )
        if isinstance(target, DirectTarget):
            # No HTTP on the way: skip encoding and signing, hand over the decoded envelope.
            envelope = Envelope(
                started.queue, started.name, started.attempt, to_utc(scheduled_at),
                _copy(started.payload) if encrypted is None else None, encrypted,
            )
            request = DeliveryRequest(
                started.endpoint, self._headers(started, b"", sign=False), b"", envelope
            )
            return _Attempt(started, request, target, key)
        body = build_envelope(
            started.queue, started.name, started.attempt, scheduled_at, started.payload,
            encrypted=encrypted,
        )
        request = DeliveryRequest(started.endpoint, self._headers(started, body), body)
        return _Attempt(started, request, target, key)

    def _plain(self, record: JobRecord) -> JobRecord:
        """``record`` with its payload decrypted, for the inspection API (the store keeps it
        encrypted, as the job server does). A payload this fake's settings hold no key for
        shows as ``None``."""
        if record.encrypted is None:
            return record
        try:
            payload = decrypt_payload(self._cipher, record.encrypted, record.queue)
        except DecryptionError:
            payload = None
        return dataclasses.replace(record, payload=payload, encrypted=None)

    def _headers(self, record: JobRecord, body: bytes, *, sign: bool = True) -> dict[str, str]:
        # The dispatcher's own headers (core.envelope); unsigned in direct mode.
        return delivery_headers(
            record.run_id or "", int(self.signing_clock()) if sign else None, body, self._keys,
            queue=record.queue, job=record.name, attempt=record.attempt,
            job_headers=record.options.headers, version=__version__,
        )

    def _target(self, record: JobRecord) -> Target | None:
        if self._handlers is not None and self._handlers.serves(record.queue):
            return self._handlers
        for base_url, target in self._targets:
            if base_url is None or _under(record.endpoint, base_url):
                return target
        return None

    @staticmethod
    def _unserved(attempt: _Attempt) -> DeliveryResponse:
        return DeliveryResponse(
            None,
            error=(
                f"ConnectError: nothing serves {attempt.request.url} in this fake; mount your "
                "app (TasklessFake(app) or fake.mount(app)) or register a handler "
                f"(fake.handle({attempt.started.queue!r}, func))"
            ),
        )

    def _send(self, attempt: _Attempt) -> DeliveryResponse:
        if attempt.target is None:
            return self._unserved(attempt)
        return attempt.target.deliver(attempt.request)

    async def _send_async(self, attempt: _Attempt) -> DeliveryResponse:
        if attempt.target is None:
            return self._unserved(attempt)
        return await attempt.target.deliver_async(attempt.request)

    def _finish(self, attempt: _Attempt, response: DeliveryResponse) -> Delivery:
        started = attempt.started
        now = self.clock.now()
        status, error, retry_after = response.status, response.error, None
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}" + (f": {text}" if (text := _snippet(response.body)) else "")
            retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        elif status is None and error is None:
            error = "no answer"
        outcome = Outcome(now, now, status, error, retry_after)
        key = attempt.key
        with self._lock:
            current = self._jobs.get(key)
            same_job = current is not None and current.id == started.id
            finished = finish_attempt(
                current if same_job else None, started, outcome,
                backoff=self.backoff, rng=self.rng,
            )
            if finished.applied and finished.record is not None:
                self._write(finished.record, key)
            if same_job:
                fields, runs = _run_fields(finished.run), self._runs.get(key)
                if runs is None:
                    self._runs[key] = fields
                elif isinstance(runs, dict):
                    self._runs[key] = [runs, fields]
                else:
                    runs.append(fields)
            # Positional, in the order of Delivery's fields: a third of the keyword call.
            delivery = Delivery(
                started.queue,  # queue
                started.name,  # name
                started.run_id or "",  # run_id
                started.attempt,  # attempt
                to_utc(started.scheduled_at or started.run_at),  # scheduled_at
                now,  # delivered_at
                started.endpoint,  # endpoint
                _plain(attempt.request.headers),  # request_headers
                attempt.request.body,  # request_body
                status,  # status
                error if not outcome.succeeded else None,  # error
                _plain(response.headers),  # response_headers
                response.body,  # response_body
                finished.run.next_retry_at if finished.applied else None,  # next_retry_at
                response.exception,  # exception
                finished.applied,  # applied
                attempt.target is None,  # unserved
                started.payload if started.encrypted is None else self._plain(started).payload,
            )
            self._deliveries.append(delivery)
        if self._observed:
            hooks.notify(
                "taskless_attempt_finished",
                queue=started.queue,
                name=started.name,
                run_id=started.run_id or "",
                attempt=started.attempt,
                status=status,
                error=delivery.error,
                duration=0.0,
            )
        return delivery

    # -- inspecting ---------------------------------------------------------------------------

    def jobs(self, queue: str | None = None) -> list[Job[Any]]:
        """The jobs stored, by queue and name (as ``queue.get`` would return them)."""
        with self._lock:
            records = [r for (q, _), r in sorted(self._jobs.items()) if queue in (None, q)]
            return [_job(self._plain(r)) for r in records]

    def job(self, name: str, queue: str | None = None) -> Job[Any] | None:
        """The job ``name`` (in ``queue``; any queue when the name is unique), or ``None``."""
        with self._lock:
            record = self._record(name, queue)
            return None if record is None else _job(self._plain(record))

    def _record(self, name: str, queue: str | None) -> JobRecord | None:
        if queue is not None:
            return self._jobs.get((queue, name))
        found = [r for (_, n), r in self._jobs.items() if n == name]
        if len(found) > 1:
            queues = ", ".join(sorted(r.queue for r in found))
            raise ValueError(f"several queues have a job named {name!r} ({queues}): pass queue=")
        return found[0] if found else None

    def scheduled(self, queue: str | None = None) -> list[Scheduled]:
        """The jobs waiting for a delivery, the next due first."""
        with self._lock:
            waiting = [
                Scheduled(
                    r.queue, r.name, to_utc(due),
                    None if r.scheduled_at is None else to_utc(r.scheduled_at),
                    r.attempt + 1, _copy(self._plain(r).payload),
                )
                for r in self._jobs.values()
                if queue in (None, r.queue) and (due := r.due_at) is not None
            ]
        return sorted(waiting, key=lambda s: (s.at, s.queue, s.name))

    def deliveries(self, name: str | None = None, *, queue: str | None = None) -> list[Delivery]:
        """The delivery attempts made, in the order they were made."""
        with self._lock:
            return [d for d in self._deliveries if _matches(d.queue, d.name, name, queue)]

    def enqueued(self, name: str | None = None, *, queue: str | None = None) -> list[Enqueued]:
        """The jobs accepted by ``enqueue`` (creates and replaces), in order."""
        with self._lock:
            return [e for e in self._enqueued if _matches(e.queue, e.name, name, queue)]

    @property
    def calls(self) -> list[ApiCall]:
        """Every API request the fake answered, in order."""
        with self._lock:
            return list(self._calls)

    def runs(self, name: str, queue: str | None = None) -> list[Run]:
        """The run history of a job, newest first (as the job server's ``/runs``)."""
        with self._lock:
            record = self._record(name, queue)
            if record is None:
                return []
            return [_run(r) for r in reversed(self._runs_of((record.queue, record.name)))]

    # -- assertions ---------------------------------------------------------------------------

    @overload
    def assert_enqueued(  # type: ignore[overload-overlap]
        self,
        name: Any = ...,
        *,
        queue: str | None = ...,
        payload: Any = ...,
        options: dict[str, Any] | JobOptions | None = ...,
        times: Literal[0],
    ) -> None: ...

    @overload
    def assert_enqueued(
        self,
        name: Any = ...,
        *,
        queue: str | None = ...,
        payload: Any = ...,
        options: dict[str, Any] | JobOptions | None = ...,
        times: int | None = ...,
    ) -> Enqueued: ...

    def assert_enqueued(
        self,
        name: Any = ANY,
        *,
        queue: str | None = None,
        payload: Any = ANY,
        options: dict[str, Any] | JobOptions | None = None,
        times: int | None = None,
    ) -> Enqueued | None:
        """Check that a job was enqueued (created or replaced); returns the latest match
        (``None`` with ``times=0``).

        :param name: the job's name (``ANY``: any).
        :param payload: the payload it was enqueued with (JSON form; ``ANY``: any).
        :param options: options it must have (only those given are compared; ``run_at`` as
            an instant; ``headers`` must contain the given ones), e.g.
            ``{"run_every": "P1W"}``.
        :param times: how many matching enqueues exactly (``0``: never).
        """
        _check_times(times)
        expected = parse_options(options) if options is not None else None
        matches = [
            e for e in self.enqueued(queue=queue)
            if (name is ANY or e.name == name)
            and (payload is ANY or e.payload == _jsonable(payload))
            and (expected is None or _options_match(e.options, expected))
        ]
        if len(matches) == times or (times is None and matches):
            return matches[-1] if matches else None
        what = _describe(name, queue, payload=payload, options=options)
        expectation = (
            "not to have been enqueued" if times == 0
            else f"to have been enqueued {times} time(s)" if times is not None
            else "to have been enqueued at least once"
        )
        raise AssertionError(
            f"expected {what} {expectation}, found {len(matches)}.\n"
            + self._enqueued_report(queue)
        )

    def assert_not_enqueued(self, name: Any = ANY, *, queue: str | None = None) -> None:
        """Check that no job (of that name, in that queue) was enqueued."""
        matches = [e for e in self.enqueued(queue=queue) if name is ANY or e.name == name]
        if matches:
            raise AssertionError(
                (
                    f"expected no job{_in_queue(queue)} to have been enqueued"
                    if name is ANY
                    else f"expected {_describe(name, queue)} not to have been enqueued"
                )
                + f", found {len(matches)}.\n" + self._enqueued_report(queue)
            )

    def assert_delivered(
        self,
        name: Any = ANY,
        *,
        queue: str | None = None,
        times: int | None = None,
        attempts: list[int] | None = None,
        status: int | None = None,
        payload: Any = ANY,
    ) -> list[Delivery]:
        """Check delivery attempts of a job; returns the matching ones.

        :param times: how many attempts exactly (default: at least one; ``0``: none).
        :param attempts: the attempt numbers, in order (``[1, 2, 3]``: two failures, then
            the third attempt).
        :param status: the status of the latest matching attempt (``200``: it succeeded).
        :param payload: the payload delivered (``ANY``: any).
        """
        _check_times(times)
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            raise TypeError(f"status must be an int such as 200, not {status!r}")
        matches = [
            d for d in self.deliveries(queue=queue)
            if (name is ANY or d.name == name)
            and (payload is ANY or d.payload == _jsonable(payload))
        ]
        problems = []
        if not matches and times != 0:
            problems.append("there was none")
        if times is not None and len(matches) != times:
            problems.append(f"expected {times} attempt(s), found {len(matches)}")
        if attempts is not None and [d.attempt for d in matches] != attempts:
            problems.append(f"expected attempts {attempts}, found {[d.attempt for d in matches]}")
        if status is not None and matches and matches[-1].status != status:
            latest = matches[-1]
            answer = (
                "got no answer" if latest.status is None else f"answered {latest.status}"
            ) + (f" ({latest.error})" if latest.error else "")
            problems.append(f"expected the latest to answer {status}, it {answer}")
        if problems:
            raise AssertionError(
                f"deliveries of {_describe(name, queue, payload=payload)}: "
                + "; ".join(problems) + ".\n" + self._delivery_report(queue)
            )
        return matches

    def assert_not_delivered(self, name: Any = ANY, *, queue: str | None = None) -> None:
        """Check that no delivery (of that job, in that queue) was attempted."""
        self.assert_delivered(name, queue=queue, times=0)

    def assert_scheduled(
        self, name: str, *, queue: str | None = None, at: datetime | str | None = None
    ) -> Scheduled:
        """Check that the job ``name`` waits for a delivery (at ``at``, if given)."""
        waiting = [s for s in self.scheduled(queue) if s.name == name]
        expected = None if at is None else parse_timestamp(at, field="at")
        if waiting and (expected is None or waiting[0].at == expected):
            return waiting[0]
        when = f" at {_ts(expected)}" if expected is not None else ""
        job = self._jobs.get((queue, name)) if queue is not None else None
        state = f" (it is {job.state.value})" if job is not None else ""
        raise AssertionError(
            f"expected {_describe(name, queue)} to be scheduled{when}{state}.\n"
            + self._scheduled_report(queue)
        )

    def _enqueued_report(self, queue: str | None) -> str:
        return _report("Enqueued", self.enqueued(queue=queue))

    def _delivery_report(self, queue: str | None) -> str:
        return _report("Deliveries", self.deliveries(queue=queue)) + "\n" + _report(
            "Scheduled", self.scheduled(queue)
        )

    def _scheduled_report(self, queue: str | None) -> str:
        return _report("Scheduled", self.scheduled(queue))


# -- helpers ----------------------------------------------------------------------------------


def _check_arguments(
    *,
    url: Any,
    mode: Any,
    settings: Any,
    backoff: Any,
    rng: Any,
    signing_clock: Any,
    max_deliveries: Any,
    lease: Any,
) -> None:
    """The arguments of :class:`TasklessFake` that it keeps as given: :class:`TypeError` or
    :class:`ValueError` naming the argument and what it takes."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a memory:// URL such as 'memory://', not {url!r}")
    try:
        memory.fake_key(url)
    except ValueError as exc:
        raise ValueError(f"url: {exc}") from None
    if mode not in ("app", "direct"):
        raise ValueError(f"mode must be 'app' or 'direct', not {mode!r}")
    if settings is not None and not isinstance(settings, Settings):
        raise TypeError(
            "settings must be a taskless.core.settings.Settings, such as "
            "Settings.from_env().replace(signing_secret=...), "
            f"not {type(settings).__name__} {settings!r}"
        )
    if backoff is not None and not isinstance(backoff, Backoff):
        raise TypeError(
            "backoff must be a taskless.core.engine.Backoff, such as Backoff(base=1.0, "
            f"cap=3600.0), not {type(backoff).__name__} {backoff!r}"
        )
    if rng is not None and not callable(getattr(rng, "random", None)):
        raise TypeError(
            "rng must have a random() method returning a float in [0, 1), such as "
            f"random.Random(0), not {type(rng).__name__} {rng!r}"
        )
    if not callable(signing_clock):
        raise TypeError(
            "signing_clock must be a function returning unix seconds, such as time.time, "
            f"not {type(signing_clock).__name__} {signing_clock!r}"
        )
    if not isinstance(max_deliveries, int) or isinstance(max_deliveries, bool):
        raise TypeError(
            "max_deliveries must be an int, such as 1000, "
            f"not {type(max_deliveries).__name__} {max_deliveries!r}"
        )
    if max_deliveries < 1:
        raise ValueError(f"max_deliveries must be at least 1, not {max_deliveries!r}")
    if not isinstance(lease, timedelta):
        raise TypeError(
            "lease must be a timedelta, such as timedelta(seconds=120), "
            f"not {type(lease).__name__} {lease!r}"
        )
    if lease <= timedelta(0):
        raise ValueError(f"lease must be longer than zero, not {lease!r}")


def _endpoint_policy(allowed_endpoints: Any) -> api.EndpointPolicy:
    """The policy of ``allowed_endpoints``: any http(s) URL (``None``), or under one of the
    prefixes of a list or tuple of them."""
    if allowed_endpoints is None:
        return _AnyHttpEndpoint()
    if not isinstance(allowed_endpoints, list | tuple):
        raise TypeError(
            "allowed_endpoints must be a list of http(s) URL prefixes, such as "
            f"['https://app.example.com/'], not {type(allowed_endpoints).__name__} "
            f"{allowed_endpoints!r}"
        )
    for index, prefix in enumerate(allowed_endpoints):
        if not isinstance(prefix, str):
            raise TypeError(
                f"allowed_endpoints[{index}] must be an http(s) URL prefix such as "
                f"'https://app.example.com/', not {type(prefix).__name__} {prefix!r}"
            )
        try:
            api.EndpointPolicy((prefix,))
        except ValidationError as exc:
            raise ValueError(f"allowed_endpoints: {exc.reason}") from None
    return api.EndpointPolicy(tuple(allowed_endpoints))


def _request_body(value: Any) -> Any:
    """A request body (``ApiRequest.json``) as the job server receives it: nothing shared with
    the caller's objects, and what JSON cannot carry failing as it does on the wire.

    Its JSON text (what the HTTP transport sends), or, for a small body of plain JSON values,
    the body read already: a copy, which is what the text would read back as (see
    :func:`_plain_copy`), at a fraction of the cost. :func:`_read` reads either.
    """
    if value is None:
        return b""
    try:
        copy, budget = _plain_copy(value, api.MAX_BODY_BYTES)
    except _NotPlain:
        pass
    else:
        if budget >= 0:  # (the last value read may have taken it over the limit)
            return copy
    return _ENCODER.encode(value).encode("utf-8")


def _read(body: Any) -> Any:
    """A body of :func:`_request_body` as :func:`taskless.core.api.parse_json_body` reads it
    (with its errors)."""
    return api.parse_json_body(body) if type(body) is bytes else body


class _NotPlain(Exception):
    """Raised by :func:`_plain_copy` at a value it leaves to JSON."""


# A body is read without JSON text when it has at most this many values (bigger ones go
# faster through the C encoder and decoder), within the API's size limit.
_PLAIN_VALUES: Final = 32
_VALUE_COST: Final = api.MAX_BODY_BYTES // _PLAIN_VALUES


def _plain_copy(value: Any, budget: int) -> tuple[Any, int]:
    """A copy of ``value`` and what is left of ``budget`` once each value and the most its
    JSON text could take are paid for; raises :class:`_NotPlain` for a value that is not
    plain, or sooner or later once the budget runs out (the caller checks that what is
    left is not negative).

    Plain: exact dicts with ASCII string keys, lists, ASCII strings, finite floats, ints of
    at most 2000 bits, booleans and None. Their compact JSON text (``ensure_ascii=False``)
    reads back as an equal copy: key order kept, every float exactly (``repr``), no integer
    near ``sys.get_int_max_str_digits()`` (640 digits at least). Anything else (a tuple, a
    non-string key, NaN, a str subclass, text that is not ASCII) goes through JSON, which
    converts or refuses it.

    Each value costs ``_VALUE_COST``, and its text at most: ``6 * len + 2`` for a string
    (``'\u001f'`` is the longest escape), ``6 * len(key) + 4`` more for a key, 1 more for a
    list item, 2 for the brackets of a container, 25 for a float, 5 for ``None`` or a
    boolean, ``bits * 31 // 100 + 3`` for an int. Strings and ints in a container are paid
    for in its loop (the usual payload), without a call each.
    """
    budget -= _VALUE_COST
    if budget < 0:
        raise _NotPlain
    kind = type(value)
    if kind is dict:
        copy: dict[str, Any] = value.copy()
        for key, item in copy.items():
            if type(key) is not str or not key.isascii():
                raise _NotPlain
            kind = type(item)
            if kind is str and item.isascii():
                budget -= 6 * (len(key) + len(item)) + 6 + _VALUE_COST
            elif kind is int and -_SMALL_INT < item < _SMALL_INT:
                budget -= 6 * len(key) + 4 + _VALUE_COST + _SMALL_INT_COST
            else:  # copied (a container), or checked (any other value)
                copy[key], budget = _plain_copy(item, budget - 6 * len(key) - 4)
        return copy, budget - 2
    if kind is list:
        items: list[Any] = value.copy()
        for index, item in enumerate(items):
            kind = type(item)
            if kind is str and item.isascii():
                budget -= 6 * len(item) + 3 + _VALUE_COST
            elif kind is int and -_SMALL_INT < item < _SMALL_INT:
                budget -= 1 + _VALUE_COST + _SMALL_INT_COST
            else:
                items[index], budget = _plain_copy(item, budget - 1)
        return items, budget - 2
    if kind is str:
        if not value.isascii():
            raise _NotPlain
        return value, budget - 6 * len(value) - 2
    if kind is int:
        bits = value.bit_length()
        if bits > 2000:
            raise _NotPlain
        return value, budget - (bits * 31 // 100 + 3)
    if kind is float:
        if value - value != 0.0:  # inf or nan
            raise _NotPlain
        return value, budget - 25  # '-1.7976931348623157e+308'
    if value is None or kind is bool:
        return value, budget - 5
    raise _NotPlain


# Ints of fewer than 64 bits, paid for as ints of 64 bits in a container's loop: 22.
_SMALL_INT: Final = 1 << 63
_SMALL_INT_COST: Final = 64 * 31 // 100 + 3


def _run_fields(run: Run) -> dict[str, Any]:
    """What the fake keeps of a run: its fields. The Run is the one the engine made for this
    attempt, dropped once it is recorded, so its field dict is taken as it is. A Run and its
    sets cost the garbage collector three objects per delivery (and a kilobyte): a test that
    delivers many jobs pays for them at every full collection."""
    return run.__dict__


def _run(fields: dict[str, Any]) -> Run:
    """A run of the history, made afresh from its fields on each read, as the job server's
    stores make them from their rows (the same Run the engine made, all fields set)."""
    return Run.model_validate(fields)


def _copy(value: Any) -> Any:
    """A copy of a JSON value (what the store holds came from JSON: dicts, lists, str, int,
    float, bool, None), so that callers never share objects with the store."""
    try:
        return _copy_json(value)
    except RecursionError:
        return json.loads(json.dumps(value))


def _copy_json(value: Any) -> Any:
    # A shallow copy, then a copy of each container in it; the scalars are immutable.
    kind = type(value)
    if kind is dict:
        copy = value.copy()
        for key, item in copy.items():
            kind = type(item)
            if kind is dict or kind is list:
                copy[key] = _copy_json(item)  # (replacing a value, not adding a key)
        return copy
    if kind is list:
        items = value.copy()
        for index, item in enumerate(items):
            kind = type(item)
            if kind is dict or kind is list:
                items[index] = _copy_json(item)
        return items
    return value


def _plain(headers: Mapping[str, str]) -> dict[str, str]:
    return headers if type(headers) is dict else dict(headers)


def _observed() -> bool:
    """Whether a plugin observes attempts (else the fake skips building the hook call)."""
    try:
        return bool(hooks.plugin_manager().hook.taskless_attempt_finished.get_hookimpls())
    except Exception:  # noqa: BLE001 - a broken plugin: let notify() log it
        return True


def _rendered(record: JobRecord) -> dict[str, Any]:
    """``_detached(api.render_job(record))``: the job's JSON, sharing nothing with the store.
    render_job makes new dicts of everything but the payload and the headers."""
    job = api.render_job(record)
    options = job["options"]
    options["headers"] = dict(options["headers"])
    if "payload" in job:
        job["payload"] = _copy(job["payload"])
    return job


def _detached(body: Any) -> Any:
    """``body`` as the caller may keep and change it: nothing shared with the store. A
    rendered job (a new dict of JSON values) only shares its payload and headers."""
    if isinstance(body, dict) and "options" in body and "state" in body:
        options = dict(body["options"])
        options["headers"] = dict(options["headers"])
        detached = dict(body)
        detached["options"] = options
        if "payload" in detached:
            detached["payload"] = _copy(detached["payload"])
        return detached
    return _copy(body)


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def _job(record: JobRecord) -> Job[Any]:
    return Job.model_validate(json.loads(json.dumps(api.render_job(record))))


def _under(endpoint: str, base_url: str) -> bool:
    base = base_url.rstrip("/")
    return endpoint == base or endpoint.startswith(base + "/")


def _matches(job_queue: str, job_name: str, name: str | None, queue: str | None) -> bool:
    return (name is None or job_name == name) and (queue is None or job_queue == queue)


def _options_match(stored: JobOptions, expected: JobOptions) -> bool:
    for option in expected.model_fields_set:
        want, have = getattr(expected, option), getattr(stored, option)
        if option == "headers":
            lowered = {k.lower(): v for k, v in have.items()}
            if any(lowered.get(k.lower()) != v for k, v in want.items()):
                return False
        elif want != have:
            return False
    return True


def _check_times(times: Any) -> None:
    if times is None:
        return
    if not isinstance(times, int) or isinstance(times, bool):
        raise TypeError(f"times must be an int such as 1 (0: never), not {times!r}")
    if times < 0:
        raise ValueError(f"times must be 0 or more, not {times!r}")


def _describe(name: Any, queue: str | None, **given: Any) -> str:
    text = ("any job" if name is ANY else f"job {name!r}") + _in_queue(queue)
    details = [f"{k}={v!r}" for k, v in given.items() if v is not ANY and v is not None]
    return text + (f" with {', '.join(details)}" if details else "")


def _in_queue(queue: str | None) -> str:
    return "" if queue is None else f" in queue {queue!r}"


def _report(title: str, items: list[Any], limit: int = 20) -> str:
    if not items:
        return f"{title}: none."
    lines = [f"{title} ({len(items)}):"]
    lines += [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


def _snippet(body: bytes) -> str:
    if not body:
        return ""
    text = body[: _ERROR_SNIPPET * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:_ERROR_SNIPPET]
