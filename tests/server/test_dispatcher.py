"""The dispatcher against a real receiver app served by uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskless.core import api, hooks
from taskless.core.engine import Backoff, JobRecord
from taskless.core.models import JobState
from taskless.core.signing import Verifier
from taskless.core.timeutil import format_timestamp, parse_timestamp
from taskless.server.dispatcher import Dispatcher, DispatcherConfig
from taskless.server.store import Change, Store
from taskless.server.store.sqlite import SQLiteStore

from .conftest import SECRET, SETTINGS, Receiver, eventually

pytestmark = pytest.mark.anyio

FAST = DispatcherConfig(backoff=Backoff(0.001, 0.005), timeout=5.0)
POLICY = api.EndpointPolicy(allow_loopback=True)


@pytest.fixture
async def dispatcher(sqlite_store: SQLiteStore) -> AsyncIterator[Dispatcher]:
    async with Dispatcher(sqlite_store, SETTINGS, FAST) as the_dispatcher:
        yield the_dispatcher


async def enqueue(
    store: Store, endpoint: str, name: str = "job", payload: Any = None, **options: Any
) -> JobRecord:
    body = {"payload": payload if payload is not None else {"n": name}, "endpoint": endpoint,
            "options": options}
    job = api.parse_job_input(body, POLICY)
    now = datetime.now(UTC)
    _, after = await store.modify("q", name, lambda c: api.apply_put(c, "q", name, job, now))
    assert after is not None
    return after


async def settled(store: Store, name: str = "job") -> JobRecord:
    async def check() -> JobRecord | None:
        record = await store.get("q", name)
        if record is not None and record.state in (JobState.COMPLETED, JobState.FAILED):
            return record
        return None

    record: JobRecord = await eventually(check)
    return record


def status(code: int, headers: dict[str, str] | None = None) -> Any:
    async def behaviour(request: Request, n: int) -> Response:
        return JSONResponse({"n": n}, status_code=code, headers=headers)

    return behaviour


@pytest.mark.parametrize(("retries", "calls"), [(0, 1), (1, 2), (5, 6)])
async def test_failing_handler_is_called_retries_plus_one_times(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher, retries: int, calls: int
) -> None:
    receiver.behaviour = status(500)
    await enqueue(sqlite_store, receiver.endpoint, retries=retries)
    record = await settled(sqlite_store)
    await asyncio.sleep(0.05)  # no further delivery may follow
    assert record.state is JobState.FAILED
    assert len(receiver.calls) == calls
    assert [c.headers["x-taskless-attempt"] for c in receiver.calls] == [
        str(n) for n in range(1, calls + 1)
    ]
    assert [json.loads(c.body)["attempt"] for c in receiver.calls] == list(range(1, calls + 1))
    assert len({c.headers["webhook-id"] for c in receiver.calls}) == 1
    runs = await sqlite_store.runs("q", "job")
    assert runs is not None
    assert [r.attempt for r in runs] == list(range(calls, 0, -1))
    assert {r.status_code for r in runs} == {500}
    assert runs[0].error == 'HTTP 500: {"n":' + str(calls) + "}"


async def test_success_is_delivered_once_signed_and_complete(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    record = await enqueue(
        sqlite_store, receiver.endpoint, payload={"to": "a@example.com"},
        headers={"X-Tenant": "acme", "user-agent": "custom/1"},
    )
    done = await settled(sqlite_store)
    assert done.state is JobState.COMPLETED
    assert done.next_run_at is None
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    Verifier([SECRET]).verify(call.headers, call.body)
    assert call.headers["content-type"] == "application/json"
    assert call.headers["x-tenant"] == "acme"
    assert call.headers["user-agent"] == "custom/1"
    assert call.headers["x-taskless-queue"] == "q"
    assert call.headers["x-taskless-job"] == "job"
    assert call.headers["x-taskless-attempt"] == "1"
    assert call.headers["webhook-id"].startswith("run_")
    assert abs(int(call.headers["webhook-timestamp"]) - time.time()) < 10
    body = json.loads(call.body)
    assert body == {
        "v": 1, "queue": "q", "job": "job", "attempt": 1,
        "scheduledAt": format_timestamp(record.run_at), "payload": {"to": "a@example.com"},
    }


async def test_signature_verifies_with_the_standardwebhooks_package(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    await enqueue(sqlite_store, receiver.endpoint)
    await receiver.wait_for_calls(1)
    call = receiver.calls[0]
    standardwebhooks.Webhook(SECRET).verify(call.body, call.headers)


async def test_a_2xx_after_failures_stops_retrying(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    async def behaviour(request: Request, n: int) -> Response:
        return Response(status_code=500 if n < 3 else 204)

    receiver.behaviour = behaviour
    await enqueue(sqlite_store, receiver.endpoint, retries=5)
    record = await settled(sqlite_store)
    await asyncio.sleep(0.05)
    assert record.state is JobState.COMPLETED
    assert len(receiver.calls) == 3


async def test_retry_after_wins_over_backoff(receiver: Receiver, sqlite_store: SQLiteStore) -> None:
    async def behaviour(request: Request, n: int) -> Response:
        if n == 1:
            return Response(status_code=503, headers={"retry-after": "0"})
        return Response(status_code=200)

    receiver.behaviour = behaviour
    slow = DispatcherConfig(backoff=Backoff(3600.0, 3600.0))  # without Retry-After: an hour
    async with Dispatcher(sqlite_store, SETTINGS, slow):
        await enqueue(sqlite_store, receiver.endpoint, retries=1)
        record = await settled(sqlite_store)
    assert record.state is JobState.COMPLETED
    assert len(receiver.calls) == 2


async def test_retry_after_delays_the_retry(receiver: Receiver, sqlite_store: SQLiteStore) -> None:
    receiver.behaviour = status(429, {"retry-after": "120"})
    async with Dispatcher(sqlite_store, SETTINGS, FAST):
        await enqueue(sqlite_store, receiver.endpoint, retries=3)
        await receiver.wait_for_calls(1)

        async def retry_scheduled() -> JobRecord | None:
            record = await sqlite_store.get("q", "job")
            ok = record is not None and record.state is JobState.SCHEDULED and record.attempt == 1
            return record if ok else None

        record = await eventually(retry_scheduled)
    assert len(receiver.calls) == 1
    assert record.next_run_at is not None
    wait = (record.next_run_at - datetime.now(UTC)).total_seconds()
    assert 100 < wait <= 120


async def test_connection_errors_fail_attempts_and_the_loop_survives(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    from taskless.server.runner import bind

    with bind() as sock:  # a bound port that does not listen: connection refused
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/jobs"
        await enqueue(sqlite_store, dead, name="dead", retries=1)
        await enqueue(sqlite_store, "http://localhost:1/x", name="refused", retries=0)
        dead_record = await settled(sqlite_store, "dead")
    assert dead_record.state is JobState.FAILED
    runs = await sqlite_store.runs("q", "dead")
    assert runs is not None and len(runs) == 2
    assert all(r.status_code is None and r.error for r in runs)
    await settled(sqlite_store, "refused")
    # the dispatcher still delivers
    await enqueue(sqlite_store, receiver.endpoint, name="alive")
    assert (await settled(sqlite_store, "alive")).state is JobState.COMPLETED


async def test_a_slow_handler_times_out(receiver: Receiver, sqlite_store: SQLiteStore) -> None:
    async def behaviour(request: Request, n: int) -> Response:
        await asyncio.sleep(0.5)
        return Response(status_code=200)

    receiver.behaviour = behaviour
    config = DispatcherConfig(timeout=0.1, backoff=Backoff(0.001, 0.001))
    async with Dispatcher(sqlite_store, SETTINGS, config):
        await enqueue(sqlite_store, receiver.endpoint, retries=0)
        record = await settled(sqlite_store)
    assert record.state is JobState.FAILED
    runs = await sqlite_store.runs("q", "job")
    assert runs is not None
    assert runs[0].error == "timed out after 0.1 s"


async def test_an_enqueue_wakes_the_sleeping_dispatcher(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    await asyncio.sleep(0.1)  # nothing is due: the dispatcher sleeps without a deadline
    start = time.monotonic()
    await enqueue(sqlite_store, receiver.endpoint)
    await receiver.wait_for_calls(1, timeout=2)
    assert time.monotonic() - start < 2


async def test_a_future_job_is_delivered_at_its_time(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    run_at = datetime.now(UTC) + timedelta(milliseconds=300)
    await enqueue(sqlite_store, receiver.endpoint, runAt=format_timestamp(run_at))
    await receiver.wait_for_calls(1)
    assert datetime.now(UTC) >= run_at
    assert json.loads(receiver.calls[0].body)["scheduledAt"] == format_timestamp(run_at)


async def test_recurring_job_runs_on_its_grid(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    run_at = datetime.now(UTC) + timedelta(milliseconds=100)
    record = await enqueue(
        sqlite_store, receiver.endpoint, runAt=format_timestamp(run_at), runEvery="PT0.2S"
    )
    await receiver.wait_for_calls(3)
    scheduled = [parse_timestamp(json.loads(c.body)["scheduledAt"]) for c in receiver.calls[:3]]
    assert scheduled == [run_at + timedelta(seconds=0.2 * k) for k in range(3)]
    ids = {c.headers["webhook-id"] for c in receiver.calls[:3]}
    assert len(ids) == 3  # one run id per occurrence
    assert record.options.run_every == "PT0.2S"


async def test_many_jobs_are_each_delivered_once(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    names = [f"j{i:03d}" for i in range(600)]
    job = api.parse_job_input({"payload": 1, "endpoint": receiver.endpoint}, POLICY)
    now = datetime.now(UTC)

    def put(name: str) -> Change:
        return lambda current: api.apply_put(current, "q", name, job, now)

    await sqlite_store.modify_many([("q", n, put(n)) for n in names])
    await receiver.wait_for_calls(600, timeout=30)

    async def all_done() -> bool:
        jobs = await sqlite_store.list_jobs("q", limit=1000)
        return all(j.state is JobState.COMPLETED for j in jobs)

    await eventually(all_done)
    await asyncio.sleep(0.05)
    delivered = sorted(c.headers["x-taskless-job"] for c in receiver.calls)
    assert delivered == names


async def test_reenqueue_during_flight_is_not_overwritten(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    release = asyncio.Event()

    async def behaviour(request: Request, n: int) -> Response:
        if n == 1:
            await release.wait()
            return Response(status_code=500)
        return Response(status_code=200)

    receiver.behaviour = behaviour
    await enqueue(sqlite_store, receiver.endpoint, retries=5)
    await receiver.wait_for_calls(1)
    later = format_timestamp(datetime.now(UTC) + timedelta(hours=1))
    replaced = await enqueue(sqlite_store, receiver.endpoint, payload={"v": 2}, runAt=later)
    release.set()

    async def recorded() -> bool:
        return len(await sqlite_store.runs("q", "job") or []) == 1

    await eventually(recorded)
    stored = await sqlite_store.get("q", "job")
    assert stored == replaced  # the failed attempt did not schedule a retry of the new job
    assert len(receiver.calls) == 1


async def patch(store: Store, body: dict[str, Any], name: str = "job") -> JobRecord:
    job_patch = api.parse_job_patch(body, POLICY)
    now = datetime.now(UTC)
    _, after = await store.modify(
        "q", name, lambda c: api.apply_patch(c, "q", name, job_patch, now)
    )
    assert after is not None
    return after


@pytest.mark.parametrize(
    ("code", "state"), [(200, JobState.COMPLETED), (500, JobState.FAILED)]
)
async def test_update_during_flight_keeps_the_result(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher, code: int,
    state: JobState,
) -> None:
    release = asyncio.Event()

    async def behaviour(request: Request, n: int) -> Response:
        await release.wait()
        return Response(status_code=code)

    receiver.behaviour = behaviour
    await enqueue(sqlite_store, receiver.endpoint, retries=5)
    await receiver.wait_for_calls(1)
    patched = await patch(sqlite_store, {"options": {"retries": 0, "headers": {"x-a": "1"}}})
    assert patched.state is JobState.RUNNING
    release.set()
    record = await settled(sqlite_store)
    await asyncio.sleep(0.1)  # no further delivery may follow
    assert record.state is state  # judged with retries=0: a failure is final
    assert record.options.retries == 0
    assert record.options.headers == {"x-a": "1"}
    assert len(receiver.calls) == 1
    runs = await sqlite_store.runs("q", "job")
    assert runs is not None
    assert [(r.attempt, r.status_code, r.next_retry_at) for r in runs] == [(1, code, None)]

async def test_delete_during_flight_does_not_revive_the_job(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    release = asyncio.Event()

    async def behaviour(request: Request, n: int) -> Response:
        await release.wait()
        return Response(status_code=200)

    receiver.behaviour = behaviour
    await enqueue(sqlite_store, receiver.endpoint)
    await receiver.wait_for_calls(1)
    await sqlite_store.delete("q", "job")
    release.set()
    await asyncio.sleep(0.2)
    assert await sqlite_store.get("q", "job") is None
    assert await sqlite_store.runs("q", "job") is None


async def test_attempt_finished_hook(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    seen: list[dict[str, Any]] = []

    class Plugin:
        @hooks.hookimpl
        def taskless_attempt_finished(
            self, queue: str, name: str, run_id: str, attempt: int, status: int | None,
            error: str | None, duration: float,
        ) -> None:
            seen.append({"queue": queue, "name": name, "run_id": run_id, "attempt": attempt,
                         "status": status, "error": error, "duration": duration})

    async def behaviour(request: Request, n: int) -> Response:
        return Response(status_code=500 if n == 1 else 200)

    receiver.behaviour = behaviour
    with hooks.registered(Plugin()):
        await enqueue(sqlite_store, receiver.endpoint, retries=1)
        await settled(sqlite_store)
        await eventually(lambda: asyncio.sleep(0, len(seen) == 2))
    assert [(s["attempt"], s["status"]) for s in seen] == [(1, 500), (2, 200)]
    assert seen[0]["error"].startswith("HTTP 500")
    assert seen[1]["error"] is None
    assert seen[0]["run_id"] == seen[1]["run_id"] == receiver.calls[0].headers["webhook-id"]
    assert all(s["duration"] >= 0 for s in seen)


async def test_stop_is_clean_with_nothing_to_do(sqlite_store: SQLiteStore) -> None:
    dispatcher = Dispatcher(sqlite_store, SETTINGS, FAST)
    await dispatcher.start()
    assert dispatcher.running
    await dispatcher.stop()
    assert not dispatcher.running
    await dispatcher.stop()  # idempotent


async def test_an_unexpected_error_while_recording_is_logged_and_recording_goes_on(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    from taskless.server import dispatcher as module

    real = module.finish_attempt
    broken = {"first"}

    def finish_attempt(current: JobRecord, *args: Any, **kwargs: Any) -> Any:
        if current.name in broken:
            broken.discard(current.name)
            raise RuntimeError("boom")
        return real(current, *args, **kwargs)

    monkeypatch.setattr(module, "finish_attempt", finish_attempt)
    await enqueue(sqlite_store, receiver.endpoint, name="first")
    await receiver.wait_for_calls(1)

    def logged() -> list[Any]:
        return [r for r in caplog.records if r.name == "taskless.server.dispatcher"
                and r.getMessage().startswith("could not record 1 attempts")]

    async def check() -> list[Any]:
        return logged()

    (record,) = await eventually(check)
    assert record.levelname == "ERROR"
    assert record.getMessage() == (
        "could not record 1 attempts; they will be delivered again when their leases expire"
    )
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"
    # The recorder still works: the next attempts are recorded, and health says so.
    await enqueue(sqlite_store, receiver.endpoint, name="second")
    assert (await settled(sqlite_store, "second")).state is JobState.COMPLETED
    assert dispatcher.running


async def test_running_is_false_once_a_task_of_the_dispatcher_has_died(
    sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    assert dispatcher.running
    recorder = dispatcher._tasks[1]
    recorder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recorder
    assert not dispatcher.running


@pytest.mark.parametrize("batch_size", [1, 2, 3])
async def test_tiny_batches_deliver_everything(
    receiver: Receiver, sqlite_store: SQLiteStore, batch_size: int
) -> None:
    config = DispatcherConfig(batch_size=batch_size, concurrency=2, backoff=Backoff(0.001, 0.001))
    async with Dispatcher(sqlite_store, SETTINGS, config):
        for i in range(7):
            await enqueue(sqlite_store, receiver.endpoint, name=f"j{i}")
        await receiver.wait_for_calls(7)
        for i in range(7):
            await settled(sqlite_store, f"j{i}")
    assert sorted(c.headers["x-taskless-job"] for c in receiver.calls) == [f"j{i}" for i in range(7)]


async def test_a_garbage_speaking_endpoint_fails_attempts_only(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await enqueue(sqlite_store, f"http://127.0.0.1:{port}/x", name="garbage", retries=1)
        record = await settled(sqlite_store, "garbage")
    assert record.state is JobState.FAILED
    runs = await sqlite_store.runs("q", "garbage")
    assert runs is not None and len(runs) == 2
    assert all(r.status_code is None and r.error for r in runs)
    await enqueue(sqlite_store, receiver.endpoint, name="after")
    assert (await settled(sqlite_store, "after")).state is JobState.COMPLETED


async def test_redirects_are_not_followed(
    receiver: Receiver, sqlite_store: SQLiteStore, dispatcher: Dispatcher
) -> None:
    receiver.behaviour = status(307, {"location": "http://example.com/elsewhere"})
    await enqueue(sqlite_store, receiver.endpoint, retries=0)
    record = await settled(sqlite_store)
    assert record.state is JobState.FAILED
    assert len(receiver.calls) == 1
