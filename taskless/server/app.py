"""The job server as a Starlette app: the HTTP API of :mod:`taskless.core.api` over a store,
with the dispatcher running for the app's lifespan.

::

    app = create_app(Settings.from_env())
    uvicorn.run(app, port=3001)
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskless.core import api
from taskless.core.engine import JobRecord, run_now
from taskless.core.errors import ConfigurationError, JobNotFound, TasklessError, ValidationError
from taskless.core.retry import RandomSource
from taskless.core.settings import Settings
from taskless.core.timeutil import utcnow

from .dispatcher import Dispatcher, DispatcherConfig
from .logs import throttled
from .openapi import openapi_document
from .store import Change, Store, StoreUnavailable, store_for_url

__all__ = ["ServerState", "create_app"]

logger = logging.getLogger("taskless.server")
#: Every request meets the same outage: said once per 10 s, with a count of the repeats.
unavailable_log = throttled("taskless.server.api")


@dataclass
class ServerState:
    """What the routes share, at ``app.state.taskless``."""

    settings: Settings
    store: Store
    policy: api.EndpointPolicy
    clock: Callable[[], datetime]
    dispatcher: Dispatcher | None = None


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    dispatcher: DispatcherConfig | bool = True,
    clock: Callable[[], datetime] = utcnow,
    rng: RandomSource | None = None,
) -> Starlette:
    """The job server app.

    :param settings: API key, signing secret, database URL, allowed endpoints (default:
        :meth:`Settings.from_env`).
    :param store: the store to use (default: from ``settings.database``). The app opens it
        when it starts; it closes it when it stops only if it created it.
    :param dispatcher: ``False`` to serve the API without delivering jobs; a
        :class:`DispatcherConfig` to tune delivery (concurrency, timeout, backoff).
    :param clock: the current time (tests).
    :param rng: the backoff jitter source (tests).
    :raises ConfigurationError: a setting is wrong (an allowed endpoint that is not a URL).
    """
    settings = settings or Settings.from_env()
    try:
        policy = api.EndpointPolicy.from_settings(settings)
    except ValidationError as exc:
        raise ConfigurationError(f"TASKLESS_ALLOWED_ENDPOINTS: {exc.reason}") from None
    owns_store = store is None
    the_store = store if store is not None else store_for_url(settings.database)
    state = ServerState(settings, the_store, policy, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await the_store.open()
        if dispatcher is not False:
            config = dispatcher if isinstance(dispatcher, DispatcherConfig) else None
            state.dispatcher = Dispatcher(the_store, settings, config, clock=clock, rng=rng)
            await state.dispatcher.start()
        try:
            yield
        finally:
            if state.dispatcher is not None:
                await state.dispatcher.stop()
                state.dispatcher = None
            if owns_store:
                await the_store.close()

    jobs = "/v1/queues/{queue}/jobs"
    routes = [
        Route(jobs, _authorized(_list_jobs), methods=["GET"]),
        Route(jobs, _authorized(_create_job), methods=["POST"]),
        Route(jobs + ":batch", _authorized(_batch), methods=["POST"]),
        Route(jobs + "/{name}", _authorized(_get_job), methods=["GET"]),
        Route(jobs + "/{name}", _authorized(_put_job), methods=["PUT"]),
        Route(jobs + "/{name}", _authorized(_patch_job), methods=["PATCH"]),
        Route(jobs + "/{name}", _authorized(_delete_job), methods=["DELETE"]),
        Route(jobs + "/{name}/runs", _authorized(_runs), methods=["GET"]),
        Route(jobs + "/{name}/run", _authorized(_run_now), methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    # A path with a trailing slash (or an empty job name) is no route: a JSON 404 that says
    # so, not a redirect that API clients would follow with another method or not at all.
    app.router.redirect_slashes = False
    app.state.taskless = state
    return app


# -- plumbing ---------------------------------------------------------------------------------

Handler = Callable[[Request, ServerState], Any]


class _JSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:  # a lone surrogate quoted in a message: escape it
            return json.dumps(content, separators=(",", ":")).encode("ascii")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _JSONResponse(body, status_code=status, headers=headers)


def _error(status: int, code: str, message: str, field: str | None = None) -> Response:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return _json(api.error_body(code, message, field), status, headers)


def _authorized(handler: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        state: ServerState = request.app.state.taskless
        if not _has_key(request, state.settings.api_key):
            return _error(
                401, "unauthorized", "missing or wrong API key: send 'Authorization: Bearer "
                "<TASKLESS_API_KEY>'",
            )
        try:
            response: Response = await handler(request, state)
        except TasklessError as exc:
            return _taskless_error(exc)
        except Exception as exc:  # never let a request take the server down with a raw 500
            logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return _error(500, "internal", "internal error of the job server; see its log")
        return response

    endpoint.__name__ = handler.__name__.lstrip("_")
    return endpoint


def _has_key(request: Request, api_key: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), api_key.encode())


async def _body(request: Request) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > api.MAX_BODY_BYTES:
        raise ValidationError("body", f"is larger than {api.MAX_BODY_BYTES} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > api.MAX_BODY_BYTES:
            raise ValidationError("body", f"is larger than {api.MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return api.parse_json_body(b"".join(chunks))


def _path(request: Request) -> tuple[str, str]:
    queue = api.validate_path_name(request.path_params["queue"], "queue")
    name = request.path_params.get("name")
    return queue, api.validate_path_name(name, "name") if name is not None else ""


def _found(record: JobRecord | None, queue: str, name: str) -> JobRecord:
    if record is None:
        raise JobNotFound(queue, name)
    return record


def _job(record: JobRecord | None, queue: str, name: str, status: int = 200) -> Response:
    """The job as the response; no job: :class:`JobNotFound` (404)."""
    return _json(api.render_job(_found(record, queue, name)), status)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        # Not "not_found": that code means "no such job", which Queue.get/delete read as None;
        # a wrong TASKLESS_URL path must surface as an error instead.
        path = request.url.path
        hint = " (paths have no trailing slash)" if path.endswith("/") and path != "/" else ""
        return _error(404, "no_route", f"no route {path!r}{hint}; see /openapi.json")
    if status == 405:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed here")
    detail = exc.detail if isinstance(exc, HTTPException) else "error"
    return _error(status, "invalid" if status < 500 else "internal", str(detail))


def _error_result(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, StoreUnavailable):
        unavailable_log.error("%s; API requests are answered 503", exc)
        body = api.error_body("unavailable", "the job server's database is unavailable")
        return 503, body
    if isinstance(exc, TasklessError):
        status, body = api.render_error(exc)
        if status >= 500:
            logger.error("%s", exc)
        return status, body
    logger.error("internal error", exc_info=exc)
    return 500, api.error_body("internal", "internal error of the job server; see its log")


def _taskless_error(exc: TasklessError) -> Response:
    status, body = _error_result(exc)
    return _json(body, status)


# -- routes -----------------------------------------------------------------------------------


async def _put_job(request: Request, state: ServerState) -> Response:
    queue, name = _path(request)
    job = api.parse_job_input(await _body(request), state.policy)
    change = _put_change(queue, name, job, state.clock())
    before, after = await state.store.modify(queue, name, change)
    return _job(after, queue, name, 201 if before is None else 200)


async def _create_job(request: Request, state: ServerState) -> Response:
    queue, _ = _path(request)
    job = api.parse_job_input(await _body(request), state.policy)
    name = api.generate_name()
    _, after = await state.store.modify(queue, name, _put_change(queue, name, job, state.clock()))
    return _job(after, queue, name, 201)


async def _batch(request: Request, state: ServerState) -> Response:
    queue, _ = _path(request)
    parsed = api.parse_batch(await _body(request), state.policy)
    now = state.clock()
    changes: list[tuple[str, str, Change]] = []
    slots: list[int | ValidationError] = []
    for item in parsed:
        if isinstance(item, ValidationError):
            slots.append(item)
            continue
        name = item.name or api.generate_name()
        changes.append((queue, name, _put_change(queue, name, item, now)))
        slots.append(len(changes) - 1)
    outcomes = await state.store.modify_many(changes) if changes else []
    results: list[dict[str, Any]] = []
    for slot in slots:
        outcome: Any = slot if isinstance(slot, ValidationError) else outcomes[slot]
        if isinstance(outcome, Exception):
            status, body = _error_result(outcome)
            results.append({"status": status, **body})
        else:
            before, after = outcome
            results.append({
                "status": 201 if before is None else 200,
                "job": api.render_job(after),
            })
    return _json({"results": results})


def _put_change(queue: str, name: str, job: api.JobInput, now: datetime) -> Change:
    return lambda current: api.apply_put(current, queue, name, job, now)


async def _get_job(request: Request, state: ServerState) -> Response:
    queue, name = _path(request)
    return _job(await state.store.get(queue, name), queue, name)


async def _patch_job(request: Request, state: ServerState) -> Response:
    queue, name = _path(request)
    patch = api.parse_job_patch(await _body(request), state.policy)
    now = state.clock()
    _, after = await state.store.modify(
        queue, name, lambda current: api.apply_patch(current, queue, name, patch, now)
    )
    return _job(after, queue, name)


async def _delete_job(request: Request, state: ServerState) -> Response:
    queue, name = _path(request)
    return _job(await state.store.delete(queue, name), queue, name)


async def _list_jobs(request: Request, state: ServerState) -> Response:
    queue, _ = _path(request)
    limit = api.parse_limit(request.query_params.get("limit"))
    after = request.query_params.get("after") or None
    records = await state.store.list_jobs(queue, limit=limit, after=after)
    return _json({"jobs": [api.render_job(r) for r in records]})


async def _runs(request: Request, state: ServerState) -> Response:
    queue, name = _path(request)
    limit = api.parse_limit(request.query_params.get("limit"))
    runs = await state.store.runs(queue, name, limit=limit)
    if runs is None:
        raise JobNotFound(queue, name)
    return _json({"runs": [api.render_run(r) for r in runs]})


async def _run_now(request: Request, state: ServerState) -> Response:
    queue, name = _path(request)
    now = state.clock()

    def change(current: JobRecord | None) -> JobRecord:
        return run_now(_found(current, queue, name), now)

    _, after = await state.store.modify(queue, name, change)
    return _job(after, queue, name)


async def _healthz(request: Request) -> Response:
    state: ServerState = request.app.state.taskless
    try:
        await state.store.next_due_at()
    except StoreUnavailable as exc:
        unavailable_log.error("%s; API requests are answered 503", exc)
        return _error(503, "unavailable", "the job server's database is unavailable")
    except Exception:
        logger.exception("health check: the store failed")
        return _error(503, "unavailable", "the job server's database is unavailable")
    if state.dispatcher is None:  # an API-only app: nothing to deliver
        return _json({"status": "ok", "dispatcher": "off"})
    if not state.dispatcher.running:
        return _error(
            503, "unavailable",
            "the dispatcher has stopped, so no job is delivered: see the job server's log, "
            "and restart it",
        )
    return _json({"status": "ok", "dispatcher": "running"})


async def _openapi(request: Request) -> Response:
    return _json(openapi_document())
