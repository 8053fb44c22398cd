"""The job server HTTP API as pure functions, so the job server and the in-memory fake serve
exactly the same API.

* ``parse_*`` read request bodies (already decoded JSON, or raw bytes with
  :func:`parse_json_body`) and raise :class:`ValidationError` naming the field, before
  anything is stored.
* ``apply_*`` turn a validated request and the job as stored (or ``None``) into the record to
  store, with :mod:`taskless.core.engine`.
* ``render_*`` give the camelCase wire JSON of jobs, runs and errors.

Routes (``{queue}`` and ``{name}`` are URL path segments)::

    PUT    /v1/queues/{queue}/jobs/{name}        upsert            200 Job (201 created)
    POST   /v1/queues/{queue}/jobs               generated name    201 Job
    POST   /v1/queues/{queue}/jobs:batch         upsert many       200 {"results": [...]}
    GET    /v1/queues/{queue}/jobs               list              200 {"jobs": [...]}
    GET    /v1/queues/{queue}/jobs/{name}        get               200 Job | 404
    PATCH  /v1/queues/{queue}/jobs/{name}        partial update    200 Job | 404
    DELETE /v1/queues/{queue}/jobs/{name}        delete + history  200 Job | 404
    GET    /v1/queues/{queue}/jobs/{name}/runs   run history       200 {"runs": [...]}
    POST   /v1/queues/{queue}/jobs/{name}/run    run now           200 Job | 404

Errors: ``{"error": {"code", "message", "field"?}}`` with codes ``invalid`` (422),
``not_found`` (404), ``unauthorized`` (401), ``unavailable`` (503).
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError as PydanticValidationError

from ._frozen import fast_init
from .engine import UNSET, JobRecord, Unset, create_job, patch_job, replace_job, schedule_of
from .errors import JobNotFound, TasklessError, ValidationError
from .jsonvalue import FINITE_HINT, Path, find, format_path
from .models import (
    JobOptions,
    JobState,
    Run,
    default_options,
    validate_options,
    validation_error_from,
)
from .names import validate_name
from .settings import Settings
from .timeutil import format_timestamp, to_utc

__all__ = [
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "EndpointPolicy",
    "JobInput",
    "JobPatch",
    "apply_patch",
    "apply_put",
    "error_body",
    "error_status",
    "generate_name",
    "parse_batch",
    "parse_job_input",
    "parse_job_patch",
    "parse_json_body",
    "parse_limit",
    "render_error",
    "render_job",
    "render_run",
    "validate_path_name",
]

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES: Final = 1024 * 1024
#: Most jobs in one ``jobs:batch`` request.
MAX_BATCH: Final = 1000
MAX_ENDPOINT_LENGTH: Final = 2048
MAX_HEADERS: Final = 64
MAX_HEADER_NAME_LENGTH: Final = 256
MAX_HEADER_VALUE_LENGTH: Final = 8192

_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE_RE: Final = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
# Set by the job server itself, or meaningless per request: a job may not set these.
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
     "te", "trailer", "proxy-connection", "webhook-id", "webhook-timestamp",
     "webhook-signature"}
)
_BODY_KEYS: Final = frozenset({"payload", "encrypted", "endpoint", "options"})
_ENCRYPTED_KEYS: Final = ("alg", "kid", "iv", "data")

_STATUS_OF_CODE: Final = {
    "invalid": 422,
    "not_found": 404,
    "unauthorized": 401,
    "unavailable": 503,
}


def _fail(field_name: str | None, message: str) -> NoReturn:
    raise ValidationError(field_name, message)


# -- request bodies ------------------------------------------------------------------------


class _NotJsonNumber(Exception):
    """Raised by the decoder at a number JSON cannot carry; the body is then read again to
    say where."""


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf or nan: "1e999" overflows to inf
        raise _NotJsonNumber
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise _NotJsonNumber


_DECODER: Final = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)


@dataclass(frozen=True, slots=True)
class _BadNumber:
    """Stands, in a body read a second time, for a number JSON cannot carry."""

    reason: str


def _mark_float(text: str) -> float | _BadNumber:
    value = float(text)
    if value - value != 0.0:
        return _BadNumber(f"{_shorten(text)} is too large: not a finite number; {FINITE_HINT}")
    return value


def _mark_int(text: str) -> int | _BadNumber:
    try:
        return int(text)
    except ValueError:
        digits = len(text.lstrip("-"))
        limit = sys.get_int_max_str_digits()
        return _BadNumber(
            f"a number is too long ({digits} digits, at most {limit}); send it as a string"
        )


def _mark_constant(name: str) -> _BadNumber:
    return _BadNumber(f"{name} is not JSON; {FINITE_HINT}")


_MARKING_DECODER: Final = json.JSONDecoder(
    parse_float=_mark_float, parse_int=_mark_int, parse_constant=_mark_constant
)


def _shorten(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class _RefusedJob:
    """A ``jobs:batch`` item refused while the body was read (a number JSON cannot carry):
    that job fails, not the batch."""

    error: ValidationError


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body: UTF-8 JSON whose numbers are finite.

    Malformed JSON or non-UTF-8 is a :class:`ValidationError` with field ``body``. A number
    JSON cannot carry (``NaN``, ``Infinity``, ``1e999``, an integer of thousands of digits)
    is one naming where it is: ``payload``, ``options.retries``, ... In a ``jobs:batch``
    body, such a number fails only the job that holds it (see :func:`parse_batch`).
    """
    if len(raw) > MAX_BODY_BYTES:
        _fail("body", f"is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail("body", f"must be UTF-8 JSON (byte {exc.start} is not UTF-8)")
    if not text.strip():
        _fail("body", "is empty; send a JSON object")
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        _fail("body", "is nested too deeply")
    except json.JSONDecodeError as exc:
        _fail("body", f"is not valid JSON: {exc}")
    except (_NotJsonNumber, ValueError):
        pass  # a number JSON cannot carry (ValueError: an integer too long to convert)
    else:
        # A "\ud800" escape decodes to a lone surrogate: not Unicode text, it cannot be
        # stored or sent. (Escaped pairs, such as emoji, decode to one character.)
        if _SURROGATE_ESCAPE.search(text) is None:
            return data
        lone = _lone_surrogates(data)
        return _refuse(data, lone) if lone else data
    # Read again, to find every such number; the rest of the body may still be malformed.
    try:
        data = _MARKING_DECODER.decode(text)
    except RecursionError:
        _fail("body", "is nested too deeply")
    except ValueError as exc:
        _fail("body", f"is not valid JSON: {exc}")
    found = [(path, bad.reason) for path, bad in find(data, _is_bad_number)]
    if _SURROGATE_ESCAPE.search(text) is not None:
        found += _lone_surrogates(data)
    return _refuse(data, found)


_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_SURROGATE_REASON: Final = (
    "holds a lone surrogate ({escape}), which is not Unicode text; send valid text "
    "(a character outside the Basic Multilingual Plane is escaped as a pair, such as "
    "\\ud83d\\ude92)"
)


def _is_bad_number(value: Any) -> bool:
    return isinstance(value, _BadNumber)


def _lone_surrogates(data: Any) -> list[tuple[Path, str]]:
    """Where ``data`` holds a string (or an object key) with a lone surrogate, and why."""
    found: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Any]] = [((), data)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            match = _SURROGATE.search(item)
            if match is not None:
                found.append((path, _SURROGATE_REASON.format(escape=f"\\u{ord(match[0]):04x}")))
        elif isinstance(item, dict):
            for key, value in reversed(item.items()):
                match = _SURROGATE.search(key)
                if match is not None:
                    escape = f"\\u{ord(match[0]):04x}"
                    found.append((path, "has a key that " + _SURROGATE_REASON.format(escape=escape)))
                else:
                    stack.append((path + (key,), value))
        elif isinstance(item, list):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(item))))
    return found


def _refuse(data: Any, found: list[tuple[Path, str]]) -> Any:
    """Raise the error of the first bad value of ``found``; in a ``jobs:batch`` body where
    every bad value is inside a job, mark those jobs refused instead."""
    if not found:  # pragma: no cover - the first decoding failed on one of them
        _fail("body", "is not valid JSON")
    in_jobs = isinstance(data, dict) and isinstance(data.get("jobs"), list) and all(
        len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int) for path, _ in found
    )
    if not in_jobs:
        path, reason = found[0]
        raise _value_error(path, reason)
    jobs = list(data["jobs"])
    for path, reason in found:
        index = path[1]
        assert isinstance(index, int)
        if not isinstance(jobs[index], _RefusedJob):
            jobs[index] = _RefusedJob(_value_error(path[2:], reason))
    return {**data, "jobs": jobs}


def _value_error(path: Path, reason: str) -> ValidationError:
    """The error for a bad value at ``path`` of a job body: the field is ``payload``,
    ``encrypted``, ``endpoint``, ``name`` or ``options.<name>``; the message says where
    inside it."""
    field_name: str | None = None
    if path and path[0] in ("payload", "encrypted", "endpoint", "name"):
        field_name = str(path[0])
    elif path and path[0] == "options":
        field_name = "options"
        if len(path) > 1 and isinstance(path[1], str):
            field_name += "." + _CAMEL_HUMP.sub(lambda m: "_" + m[0].lower(), path[1])
    located = format_path(path)
    if not path or located == field_name:
        return ValidationError(field_name or "body", reason)
    return ValidationError(field_name or "body", f"at {located}: {reason}")


_CAMEL_HUMP: Final = re.compile(r"[A-Z]")


@fast_init
@dataclass(frozen=True, slots=True)
class JobInput:
    """A validated PUT/POST body (or one job of a batch)."""

    endpoint: str
    options: JobOptions
    payload: Any = None
    encrypted: dict[str, Any] | None = None
    name: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class JobPatch:
    """A validated PATCH body: only what was given."""

    payload: Any = UNSET
    encrypted: dict[str, Any] | None | Unset = UNSET
    endpoint: str | Unset = UNSET
    options: JobOptions | None = None


@dataclass(frozen=True)
class EndpointPolicy:
    """Where deliveries may go: under one of ``prefixes``, or (development) any loopback host.

    A prefix matches on scheme, host and port exactly and on the path segment by segment:
    ``https://app.example.com/jobs`` allows ``https://app.example.com/jobs/emails`` but not
    ``https://app.example.com/jobs-admin`` or ``https://app.example.com.evil.net/jobs``.
    """

    prefixes: tuple[str, ...] = ()
    allow_loopback: bool = False
    _parsed: tuple[tuple[str, str, int, str], ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        parsed = []
        for prefix in self.prefixes:
            origin = _origin(prefix)
            if origin is None:
                raise ValidationError(
                    "TASKLESS_ALLOWED_ENDPOINTS",
                    f"{prefix!r} is not an http(s) URL prefix such as 'https://app.example.com/'",
                )
            parsed.append(origin)
        object.__setattr__(self, "_parsed", tuple(parsed))

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointPolicy:
        return cls(settings.allowed_endpoints, allow_loopback=settings.is_development)

    def check(self, endpoint: Any, field_name: str = "endpoint") -> str:
        """``endpoint`` if deliveries may go there, else :class:`ValidationError`."""
        if not isinstance(endpoint, str) or not endpoint:
            _fail(field_name, "must be an http(s) URL, such as 'https://app.example.com/jobs'")
        if len(endpoint) > MAX_ENDPOINT_LENGTH:
            _fail(field_name, f"is longer than {MAX_ENDPOINT_LENGTH} characters")
        origin = _origin(endpoint)
        if origin is None:
            _fail(field_name, _url_problem(endpoint))
        scheme, host, port, path = origin
        for p_scheme, p_host, p_port, p_path in self._parsed:
            if (scheme, host, port) == (p_scheme, p_host, p_port) and _path_under(path, p_path):
                return endpoint
        if self.allow_loopback and _is_loopback(host):
            return endpoint
        if self.prefixes:
            allowed = "deliveries may only go under " + ", ".join(self.prefixes) + (
                " or to a loopback host (development)" if self.allow_loopback else ""
            )
        elif self.allow_loopback:
            allowed = "in development only loopback endpoints are allowed"
        else:
            allowed = "no endpoint is allowed yet"
        _fail(
            field_name,
            f"{endpoint!r} is not an allowed endpoint: {allowed}; to allow it, set "
            f"TASKLESS_ALLOWED_ENDPOINTS={_origin_text(scheme, host, port)}/ (a comma list of "
            "URL prefixes) on the job server",
        )


def _url_problem(url: str) -> str:
    """Why ``url`` (refused by :func:`_origin`) cannot be an endpoint."""
    example = "such as 'https://app.example.com/api/queues/emails'"
    if _UNSAFE_URL_CHAR.search(url):
        return f"{url!r} contains spaces or control characters; give an http(s) URL {example}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc}); give an http(s) URL {example}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"{url!r} is not an http(s) URL; give one {example}"
    if not parts.hostname:
        return f"{url!r} has no host; give an http(s) URL with a host, {example}"
    if parts.port == 0:
        return f"{url!r} has port 0, which no server listens on; give the app's port"
    if parts.fragment or url.endswith("#"):
        return (
            f"{url!r} has a fragment ('#...'), which is never sent in a request; remove it"
        )
    # Credentials are the only reason left.
    return (
        "credentials in URLs are not allowed (they would be stored and shown with the job); "
        "remove 'user:password@' and send them in a header (options.headers), e.g. "
        "'authorization'"
    )


def _origin_text(scheme: str, host: str, port: int) -> str:
    default_port = 443 if scheme == "https" else 80
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == default_port else f":{port}")


_UNSAFE_URL_CHAR: Final = re.compile(r"[\s\x00-\x1f\x7f]")


@lru_cache(maxsize=4096)  # the same few endpoints are checked over and over
def _origin(url: str) -> tuple[str, str, int, str] | None:
    if _UNSAFE_URL_CHAR.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if port == 0 or parts.fragment or url.endswith("#"):
        return None
    default_port = 443 if scheme == "https" else 80
    return scheme, parts.hostname.lower(), port or default_port, parts.path or "/"


def _path_under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix[:-1]
    return path == prefix or path.startswith(prefix + "/")


@lru_cache(maxsize=1024)
def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_path_name(value: str, field_name: str) -> str:
    """A queue or job name (from the URL path or a body): the rule of
    :func:`taskless.core.names.validate_name`, the client's own, with its message."""
    return validate_name(value, field=field_name)


def generate_name() -> str:
    """A unique name for a job created without one."""
    return f"job_{uuid.uuid4().hex}"


def _object(body: Any, field_name: str | None = None) -> dict[str, Any]:
    if not isinstance(body, dict):
        _fail(field_name or "body", "must be a JSON object")
    return body


def _check_keys(body: dict[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    if body.keys() <= allowed:
        return
    for key in body:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            _fail(f"{prefix}{key}", f"is not a known field (known: {known})")


def _options(value: Any, *, partial: bool) -> JobOptions:
    if value is None:
        return default_options()
    data = _object(value, "options")
    try:
        # default_options() is JobOptions.model_validate({}), without running validation.
        options = validate_options(data) if data else default_options()
    except PydanticValidationError as exc:
        error = validation_error_from(exc, prefix="options")
        raise ValidationError(error.field, _with_field_name(error)) from None
    if options.headers:
        _check_headers(options.headers)
    if not partial and options.run_every is not None:
        _check_schedule(options)
    return options


def _with_field_name(error: ValidationError) -> str:
    # The message should say which option is wrong even when read without its field.
    name = (error.field or "").rpartition(".")[2]
    if name and name not in error.reason:
        return f"{name}: {error.reason}"
    return error.reason


def _check_schedule(options: JobOptions, now: datetime | None = None) -> None:
    """Refuse a run_every/timezone/run_at combination the schedule cannot follow."""
    if options.run_every is None:
        return
    from .timeutil import utcnow

    filled = options if options.run_at is not None else options.model_copy(
        update={"run_at": now or utcnow()}
    )
    try:
        schedule_of(filled)
    except ValidationError as exc:
        name = exc.field or "run_every"
        field_name = name if name.startswith("options.") else f"options.{name}"
        raise ValidationError(field_name, _with_field_name(exc)) from None
    except (ValueError, OverflowError) as exc:
        _fail("options.run_every", f"run_every: cannot be scheduled: {exc}")


def _check_headers(headers: dict[str, str]) -> None:
    if len(headers) > MAX_HEADERS:
        _fail("options.headers", f"has more than {MAX_HEADERS} headers")
    seen: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if len(name) > MAX_HEADER_NAME_LENGTH:
            _fail(
                "options.headers",
                f"the header name {_shorten(name)!r} is too long ({len(name)} characters; at "
                f"most {MAX_HEADER_NAME_LENGTH})",
            )
        if not _HEADER_NAME_RE.fullmatch(name):
            _fail("options.headers", f"{name!r} is not a valid HTTP header name")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            _fail(
                "options.headers",
                f"the value of {name!r} is too long ({len(value)} characters; at most "
                f"{MAX_HEADER_VALUE_LENGTH}); send large data in the payload",
            )
        if not _HEADER_VALUE_RE.fullmatch(value):
            _fail(
                "options.headers",
                f"the value of {name!r} is not a valid HTTP header value: it contains a line "
                "break or another control character",
            )
        if not value.isascii():
            _fail(
                "options.headers",
                f"the value of {name!r} is not ASCII text: receivers would read its bytes in "
                "another encoding; send such text in the payload, or percent-encode it",
            )
        if lowered in seen:
            _fail(
                "options.headers",
                f"{seen[lowered]!r} and {name!r} are the same header (names are not "
                "case-sensitive); give it once",
            )
        seen[lowered] = name
        if lowered in _RESERVED_HEADERS or lowered.startswith("x-taskless-"):
            _fail("options.headers", f"{name!r} is set by the job server and cannot be given")
        if lowered == "content-type" and value.split(";")[0].strip().lower() != "application/json":
            _fail("options.headers", "content-type is always application/json")


def _encrypted(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != set(_ENCRYPTED_KEYS) or not all(
        isinstance(value[k], str) for k in _ENCRYPTED_KEYS
    ):
        _fail("encrypted", "must be an object with string alg, kid, iv and data")
    return {k: value[k] for k in _ENCRYPTED_KEYS}


def parse_job_input(body: Any, policy: EndpointPolicy, *, allow_name: bool = False) -> JobInput:
    """Validate a PUT or POST body ``{"payload", "endpoint", "options"}`` (``encrypted`` in
    place of ``payload`` for an encrypted payload; ``name`` too when ``allow_name``)."""
    data = _object(body)
    _check_keys(data, _BODY_KEYS | {"name"} if allow_name else _BODY_KEYS)
    name = data.get("name")
    if name is not None:
        validate_name(name, field="name")
    if "payload" in data and "encrypted" in data:
        _fail("payload", "give either payload or encrypted, not both")
    if "payload" not in data and "encrypted" not in data:
        _fail("payload", "is required (any JSON value, null included)")
    encrypted = _encrypted(data["encrypted"]) if "encrypted" in data else None
    if "endpoint" not in data:
        _fail("endpoint", "is required: the URL the job is delivered to")
    endpoint = policy.check(data["endpoint"])
    return JobInput(
        endpoint=endpoint,
        options=_options(data.get("options"), partial=False),
        payload=data.get("payload"),
        encrypted=encrypted,
        name=name,
    )


def parse_job_patch(body: Any, policy: EndpointPolicy) -> JobPatch:
    """Validate a PATCH body: any of ``payload``/``encrypted``, ``endpoint``, ``options``."""
    data = _object(body)
    _check_keys(data, _BODY_KEYS)
    if "payload" in data and "encrypted" in data:
        _fail("payload", "give either payload or encrypted, not both")
    return JobPatch(
        payload=data.get("payload", UNSET),
        encrypted=_encrypted(data["encrypted"]) if "encrypted" in data else UNSET,
        endpoint=policy.check(data["endpoint"]) if "endpoint" in data else UNSET,
        options=_options(data["options"], partial=True) if "options" in data else None,
    )


def parse_batch(body: Any, policy: EndpointPolicy) -> list[JobInput | ValidationError]:
    """Validate a ``jobs:batch`` body ``{"jobs": [...]}``: one result per job, in order; a bad
    job is its :class:`ValidationError` (its field prefixed ``jobs[i].``), not a failure of
    the batch."""
    data = _object(body)
    _check_keys(data, frozenset({"jobs"}))
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        _fail("jobs", "must be a list of jobs")
    if len(jobs) > MAX_BATCH:
        _fail("jobs", f"has {len(jobs)} jobs; at most {MAX_BATCH} per batch")
    results: list[JobInput | ValidationError] = []
    for i, item in enumerate(jobs):
        if isinstance(item, _RefusedJob):
            results.append(ValidationError(f"jobs[{i}].{item.error.field}", item.error.reason))
            continue
        try:
            results.append(parse_job_input(item, policy, allow_name=True))
        except ValidationError as exc:
            results.append(ValidationError(f"jobs[{i}].{exc.field or 'body'}", exc.reason))
    return results


def parse_limit(value: str | None, *, default: int = 100, maximum: int = 1000) -> int:
    """The ``limit`` query parameter."""
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= maximum:
        _fail("limit", f"must be an integer from 1 to {maximum}")
    return int(value)


# -- applying requests to records ------------------------------------------------------------


def apply_put(
    current: JobRecord | None, queue: str, name: str, job: JobInput, now: datetime
) -> JobRecord:
    """The record after an upsert: a new job, or ``current`` replaced (same id)."""
    if current is None:
        return create_job(
            queue, name, job.endpoint, job.payload, job.options, now, encrypted=job.encrypted
        )
    return replace_job(current, job.endpoint, job.payload, job.options, now, encrypted=job.encrypted)


def apply_patch(
    current: JobRecord | None, queue: str, name: str, patch: JobPatch, now: datetime
) -> JobRecord:
    """The record after a partial update.

    :raises JobNotFound: there is no such job (nothing is created).
    :raises ValidationError: the patched options no longer make a schedule.
    """
    if current is None:
        raise JobNotFound(queue, name)
    record = patch_job(
        current,
        now,
        payload=patch.payload,
        endpoint=patch.endpoint,
        options=patch.options,
        encrypted=patch.encrypted,
    )
    if patch.options is not None and patch.options.model_fields_set & {"run_every", "timezone", "run_at"}:
        _check_schedule(record.options, now)
    return record


# -- rendering -------------------------------------------------------------------------------


def _utc(dt: datetime | None) -> str | None:
    return None if dt is None else format_timestamp(to_utc(dt))


def render_options(options: JobOptions) -> dict[str, Any]:
    """Options as on the wire; ``runAt`` keeps the offset it was given with."""
    return {
        "enabled": options.enabled,
        "headers": options.headers,
        "retries": options.retries,
        "runAt": None if options.run_at is None else format_timestamp(options.run_at),
        "runEvery": options.run_every,
        "timezone": options.timezone,
    }


_STATE_TEXT: Final = {state: state.value for state in JobState}  # .value is a slow property


def render_job(record: JobRecord) -> dict[str, Any]:
    """A job as the wire JSON of the API (camelCase; times in UTC except ``options.runAt``)."""
    job: dict[str, Any] = {
        "id": record.id,
        "queue": record.queue,
        "name": record.name,
        "endpoint": record.endpoint,
    }
    if record.encrypted is not None:
        job["encrypted"] = record.encrypted
    else:
        job["payload"] = record.payload
    # The three times are often one instant (a job just created): formatted once then.
    created_at, updated_at, next_run_at = record.created_at, record.updated_at, record.next_run_at
    created = _utc(created_at)
    updated = created if updated_at == created_at else _utc(updated_at)
    job["options"] = render_options(record.options)
    job["state"] = _STATE_TEXT[record.state]
    job["nextRunAt"] = (
        updated if next_run_at is not None and next_run_at == updated_at else _utc(next_run_at)
    )
    job["createdAt"] = created
    job["updatedAt"] = updated
    return job


def render_run(run: Run) -> dict[str, Any]:
    """One run history entry (one attempt) as wire JSON."""
    return {
        "runId": run.run_id,
        "attempt": run.attempt,
        "scheduledAt": _utc(run.scheduled_at),
        "startedAt": _utc(run.started_at),
        "finishedAt": _utc(run.finished_at),
        "status": run.status,
        "statusCode": run.status_code,
        "error": run.error,
        "nextRetryAt": _utc(run.next_retry_at),
    }


def render_jobs(records: Sequence[JobRecord]) -> dict[str, Any]:
    return {"jobs": [render_job(r) for r in records]}


def error_body(code: str, message: str, field_name: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field_name:
        error["field"] = field_name
    return {"error": error}


def error_status(code: str) -> int:
    return _STATUS_OF_CODE.get(code, 500)


def render_error(exc: TasklessError) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error": {...}}`` body for an error raised by the functions above."""
    if isinstance(exc, ValidationError):
        return 422, error_body("invalid", exc.reason, exc.field)
    if isinstance(exc, JobNotFound):
        return 404, error_body("not_found", exc.message)
    return 500, error_body(exc.code, exc.message)
