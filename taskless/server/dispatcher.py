"""The dispatcher: delivers due jobs as signed HTTP POSTs and records every attempt.

One loop claims due jobs from the store in batches (each claim starts an attempt and takes a
lease), a fixed pool of worker tasks delivers them concurrently over one keep-alive
``aiohttp`` session, and a recorder writes the finished attempts back in batches. Between
claims the loop sleeps until the next job is due or the store reports a change (an enqueue,
a retry that is due sooner): there is no fixed-interval polling.

Nothing a job or an endpoint does can stop the loop: connection errors, timeouts, bad
responses and even unexpected exceptions become failed attempts; store errors are logged and
retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, Self

import aiohttp

from taskless import __version__
from taskless.core import hooks
from taskless.core.engine import Backoff, JobRecord, Outcome, finish_attempt
from taskless.core.envelope import EncryptedPayload, build_envelope, delivery_headers
from taskless.core.retry import RandomSource, parse_retry_after
from taskless.core.settings import Settings
from taskless.core.signing import decode_secret
from taskless.core.timeutil import utcnow

from .store import FinishedAttempt, Store, StoreUnavailable

__all__ = ["Dispatcher", "DispatcherConfig"]

logger = logging.getLogger("taskless.server.dispatcher")

_ERROR_SNIPPET: Final = 200


@dataclass(frozen=True)
class DispatcherConfig:
    """How the dispatcher works.

    :param concurrency: deliveries in flight at most.
    :param batch_size: jobs claimed (and leased) per store call, at most; also the most jobs
        claimed and not yet delivered at any time.
    :param timeout: seconds an attempt may take, connecting included.
    :param backoff: retry delays; ``queue_backoff`` overrides them per queue.
    :param lease: how long a claimed attempt stays reserved; default: enough for a full batch
        to wait for a slot and time out, plus a minute.
    :param max_response_bytes: response bytes read at most (the start of an error body goes
        to the run history).
    """

    concurrency: int = 64
    batch_size: int = 256
    timeout: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    queue_backoff: Mapping[str, Backoff] = field(default_factory=dict)
    lease: timedelta | None = None
    max_response_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.batch_size < 1:
            raise ValueError("concurrency and batch_size must be >= 1")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")

    def backoff_for(self, queue: str) -> Backoff:
        return self.queue_backoff.get(queue, self.backoff)

    @property
    def effective_lease(self) -> timedelta:
        if self.lease is not None:
            return self.lease
        rounds = 1 + math.ceil(self.batch_size / self.concurrency)
        return timedelta(seconds=self.timeout * rounds + 60)


class Dispatcher:
    """Delivers due jobs from ``store``, signed with ``settings.signing_secret``.

    Use as ``async with Dispatcher(store, settings): ...`` or :meth:`start`/:meth:`stop`;
    the store must be open. ``clock`` and ``rng`` (backoff jitter) are injectable for tests.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        config: DispatcherConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: RandomSource | None = None,
    ) -> None:
        self.store = store
        self.config = config or DispatcherConfig()
        # The server signs with the current secret (receivers also accept previous ones).
        self._keys = (decode_secret(settings.signing_secret),)
        self._clock = clock
        self._rng = rng
        self._lease = self.config.effective_lease
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._backlog: deque[JobRecord] = deque()
        self._ready = asyncio.Condition()
        self._wake = asyncio.Event()
        self._sleep_until: datetime | None = None  # None: awake (or sleeping without end)
        self._sleeping = False
        self._waiting_for_room = False
        self._outstanding = 0  # claimed and not yet delivered
        # Claim again once no more than this many are outstanding: claims stay batches.
        self._low_water = self.config.batch_size // 2
        self._results: list[tuple[JobRecord, Outcome]] = []
        self._results_ready = asyncio.Event()
        self._stopping = False

    # -- life cycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.config.concurrency, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("accept-encoding",),
        )
        self._load_plugins()  # now rather than in the middle of the first deliveries
        self.store.add_listener(self.wake)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="taskless-claim"),
            asyncio.create_task(self._record_loop(), name="taskless-record"),
            *(
                asyncio.create_task(self._worker(), name=f"taskless-deliver-{i}")
                for i in range(self.config.concurrency)
            ),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; finish the claimed deliveries for up to ``grace`` seconds, record
        their results and close the HTTP session. Attempts cut short are delivered again when
        their lease expires (on the SQLite store: when the server restarts)."""
        if not self._tasks:
            return
        self._stopping = True
        self.store.remove_listener(self.wake)
        self._wake.set()
        claim, recorder, *workers = self._tasks
        with contextlib.suppress(asyncio.CancelledError):
            await claim
        async with self._ready:
            self._ready.notify_all()
        _, pending = await asyncio.wait(workers, timeout=grace) if workers else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._results_ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder
        self._tasks = []
        self._backlog.clear()
        self._outstanding = 0
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def wake(self, due_at: datetime | None = None) -> None:
        """Tell the dispatcher a job may be due at ``due_at`` (``None``: check now).

        A store listener: called after enqueues and recorded results.
        """
        if (
            due_at is None
            or not self._sleeping
            or self._sleep_until is None
            or due_at < self._sleep_until
        ):
            self._wake.set()

    # -- claiming

    async def _claim_loop(self) -> None:
        failures = 0
        limit = self.config.batch_size
        while not self._stopping:
            self._wake.clear()
            room = limit - self._outstanding
            if self._outstanding > self._low_water:
                # Plenty claimed already: wait until the workers have made room, so that
                # claims stay batches rather than one job per finished delivery.
                self._waiting_for_room = True
                await self._sleep(None, None)
                self._waiting_for_room = False
                continue
            try:
                claimed = await self.store.claim_due(self._clock(), room, self._lease)
                if claimed:
                    await self._enqueue(claimed)
                if len(claimed) == room:
                    continue  # more may be due
                next_due = await self.store.next_due_at()
                if failures:
                    logger.warning("claiming jobs again after %d failed tries", failures)
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(30.0, 0.25 * 2 ** min(failures, 7))
                if isinstance(exc, StoreUnavailable):  # the store has said why: one line
                    logger.error("cannot claim jobs: %s; retrying in %.1f s", exc, delay)
                else:
                    logger.exception("the store failed while claiming jobs; retrying in %.1f s",
                                     delay)
                await self._sleep(delay, None)
                continue
            if next_due is None:
                await self._sleep(None, None)
            else:
                delay = (next_due - self._clock()).total_seconds()
                if delay > 0:
                    await self._sleep(delay, next_due)

    async def _sleep(self, delay: float | None, until: datetime | None) -> None:
        self._sleep_until = until
        self._sleeping = True
        try:
            if delay is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._sleeping = False
            self._sleep_until = None

    async def _enqueue(self, records: list[JobRecord]) -> None:
        async with self._ready:
            self._backlog.extend(records)
            self._outstanding += len(records)
            self._ready.notify(len(records))

    # -- delivering

    async def _worker(self) -> None:
        while True:
            async with self._ready:
                while not self._backlog:
                    if self._stopping:
                        return
                    await self._ready.wait()
                record = self._backlog.popleft()
            try:
                outcome = await self._deliver(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a delivery never kills its worker
                now = self._clock()
                outcome = Outcome(now, now, None, f"internal error: {type(exc).__name__}: {exc}")
                logger.exception("delivery of %s/%s failed unexpectedly", record.queue, record.name)
            self._outstanding -= 1
            self._results.append((record, outcome))
            self._results_ready.set()
            if self._waiting_for_room and self._outstanding <= self._low_water:
                self._wake.set()

    def _headers(self, record: JobRecord, body: bytes, timestamp: int) -> dict[str, str]:
        return delivery_headers(
            record.run_id or "", timestamp, body, self._keys,
            queue=record.queue, job=record.name, attempt=record.attempt,
            job_headers=record.options.headers, version=__version__,
        )

    async def _deliver(self, record: JobRecord) -> Outcome:
        session = self._session
        if session is None:
            raise RuntimeError("the dispatcher is not started")
        started = self._clock()
        encrypted = EncryptedPayload(**record.encrypted) if record.encrypted is not None else None
        body = build_envelope(
            record.queue,
            record.name,
            record.attempt,
            record.scheduled_at or record.run_at,
            record.payload,
            encrypted=encrypted,
        )
        headers = self._headers(record, body, int(started.timestamp()))
        status: int | None = None
        error: str | None = None
        retry_after_header: str | None = None
        try:
            async with session.post(
                record.endpoint, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after_header = response.headers.get("retry-after")
                text = await self._read(response)
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (f": {text}" if text else "")
        except TimeoutError:
            error = f"timed out after {self.config.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except (OSError, ValueError) as exc:  # a malformed URL, a refused socket
            error = f"{type(exc).__name__}: {exc}"
        finished = self._clock()
        retry_after = None
        if error is not None and retry_after_header is not None:
            retry_after = parse_retry_after(retry_after_header, finished)
        return Outcome(started, finished, status, error, retry_after)

    async def _read(self, response: aiohttp.ClientResponse) -> str:
        """Read the body (so the connection can be reused); the start of it as text."""
        limit = self.config.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await response.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if 200 <= response.status < 300 or not chunks:
            return ""
        text = b"".join(chunks)[: _ERROR_SNIPPET * 4].decode("utf-8", "replace")
        return " ".join(text.split())[:_ERROR_SNIPPET]

    # -- recording

    async def _record_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if self._results:
                batch, self._results = self._results, []
                try:
                    await self._record(batch)
                except Exception:  # a bad batch never stops the recording of the next ones
                    logger.exception(
                        "could not record %d attempts; they will be delivered again when "
                        "their leases expire", len(batch)
                    )
            if self._stopping and not any(
                not task.done() for task in self._tasks[2:]
            ) and not self._results:
                return

    async def _record(self, batch: list[tuple[JobRecord, Outcome]]) -> None:
        config, rng = self.config, self._rng
        attempts = []
        for started, outcome in batch:
            backoff = config.backoff_for(started.queue)
            finished = finish_attempt(started, started, outcome, backoff=backoff, rng=rng)
            # If the job was patched meanwhile, the store judges the result against it as it
            # is then (the new retries count; a rescheduled or disabled job makes it stale).
            refinish = partial(
                finish_attempt, started=started, outcome=outcome, backoff=backoff, rng=rng
            )
            attempts.append(FinishedAttempt(started, finished.record, finished.run, refinish))
            if outcome.error is None:
                logger.debug("delivered %s/%s attempt %d", started.queue, started.name,
                             started.attempt)
            else:
                logger.info("attempt %d of %s/%s failed: %s", started.attempt, started.queue,
                            started.name, outcome.error)
        if await self._store_results(attempts):
            self._notify_hooks(batch)

    async def _store_results(self, attempts: list[FinishedAttempt]) -> bool:
        """Record ``attempts``; whether that worked. While the database is unavailable the
        results stay good as long as their leases hold: keep trying until shortly before the
        first one ends (or the dispatcher stops), so that an outage of the database does not
        make every delivery in flight happen twice."""
        leases = [a.started.lease_until for a in attempts if a.started.lease_until is not None]
        budget = (min(leases) - self._clock()).total_seconds() - 5 if leases else 0.0
        deadline = time.monotonic() + budget
        tries = 0
        delay = 0.5
        while True:
            tries += 1
            try:
                await self.store.record_attempts(attempts)
                return True
            except StoreUnavailable as exc:
                if self._stopping or time.monotonic() + delay >= deadline:
                    logger.error("could not record %d attempts (%s); they will be delivered "
                                 "again when their leases expire", len(attempts), exc)
                    return False
                logger.warning("could not record %d attempts (%s); retrying in %.1f s",
                               len(attempts), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                if tries >= 3:
                    logger.exception("could not record %d attempts; they will be delivered "
                                     "again when their leases expire", len(attempts))
                    return False
                logger.exception("the store failed while recording attempts; retrying")
                await asyncio.sleep(0.5 * tries)

    def _load_plugins(self) -> bool:
        """Whether a plugin observes attempts (loading the plugins on first use)."""
        try:
            return bool(hooks.plugin_manager().hook.taskless_attempt_finished.get_hookimpls())
        except Exception:
            logger.exception("could not load the Taskless plugins")
            return False

    def _notify_hooks(self, batch: list[tuple[JobRecord, Outcome]]) -> None:
        if not self._load_plugins():
            return
        for started, outcome in batch:
            hooks.notify(
                "taskless_attempt_finished",
                queue=started.queue,
                name=started.name,
                run_id=started.run_id or "",
                attempt=started.attempt,
                status=outcome.status,
                error=outcome.error,
                duration=(outcome.finished_at - outcome.started_at).total_seconds(),
            )

    # -- introspection (tests, health)

    @property
    def running(self) -> bool:
        """Started, not stopping, and none of its tasks has ended (which only a bug could
        do): ``/healthz`` reports a dispatcher that no longer works as not running."""
        return bool(self._tasks) and not self._stopping and not any(
            task.done() for task in self._tasks
        )

    def stats(self) -> dict[str, Any]:
        return {"outstanding": self._outstanding, "backlog": len(self._backlog)}
