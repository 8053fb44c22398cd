"""The PostgreSQL store: several job server processes, on several machines, on one database.

* Claims: ``SELECT ... FOR UPDATE SKIP LOCKED`` takes up to a batch of due jobs that no other
  process is claiming right now, and the same transaction starts their attempts with a lease
  (``due_at`` becomes the lease end). A process that dies mid-delivery never records its
  result, so when the lease runs out the job is due again and any process delivers it again,
  as the next attempt of the same run (at-least-once; same ``webhook-id``).
* Results: one compare-and-set ``UPDATE ... FROM unnest(...)`` per batch, so a late result
  of an attempt whose lease expired (and that another process retried) only goes to the run
  history.
* Wake-ups: a committed change that makes a job due sends ``NOTIFY`` on the schema's channel;
  every store listens on one dedicated connection and wakes its dispatcher, so a new job does
  not wait for a poll. When that connection drops (the database restarts) the store logs it,
  reconnects with backoff and then wakes its dispatcher to look at everything it may have
  missed.
* Failures: every database error that is not a bug becomes
  :class:`~taskless.server.store.base.StoreUnavailable` (the API answers 503): within
  ``timeout`` seconds when no connection comes, within a second once the store knows the
  database is down (its listening connection dropped, or a connection attempt failed). A statement that failed because its pooled
  connection had died (a restarted database) is retried once on a fresh connection, but only
  when it can have had no effect (before ``COMMIT``); deadlocks are retried a few times.
* Schema: created and upgraded by :meth:`PostgresStore.open` under an advisory lock, versioned
  in ``taskless_schema``; a database newer than the code is refused. Tables live in the first
  schema of the connection's ``search_path``, so several deployments can share a database by
  giving each its own schema (``?options=-csearch_path%3Dmyschema``).

Times are ``timestamptz`` (microsecond precision, read back in UTC); ``run_at`` is also kept
as text to remember the offset it was given with. Job payloads and headers are kept as JSON
text exactly as written.

Several processes compare lease ends written by each other's clocks: keep the machines'
clocks synchronised (NTP); a lease is much longer than any sane clock skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

try:
    import psycopg
    import psycopg.errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from taskless.core.errors import MissingExtra

    raise MissingExtra("postgres", "psycopg") from exc

from taskless.core.engine import DEFAULT_LEASE, JobRecord, start_attempt
from taskless.core.errors import ConfigurationError
from taskless.core.models import Run

from ..logs import throttled
from ._sql import JOB_COLUMNS, RUN_COLUMNS, Rows, apply_change, dumps
from .base import DEFAULT_HISTORY_LIMIT, Change, FinishedAttempt, Store, StoreUnavailable

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]

logger = logging.getLogger("taskless.server.store.postgres")

# Each entry upgrades the schema by one version; never edit a released entry, append one.
_MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE taskless_jobs (
        id           text PRIMARY KEY,
        queue        text NOT NULL,
        name         text NOT NULL,
        endpoint     text NOT NULL,
        payload      text NOT NULL,          -- JSON: the payload, or the encrypted form
        encrypted    boolean NOT NULL,       -- payload holds {"alg", "kid", "iv", "data"}
        enabled      boolean NOT NULL,
        headers      text NOT NULL,          -- JSON object
        retries      integer NOT NULL,
        run_at       text NOT NULL,          -- ISO-8601 with the offset it was given with
        run_every    text,
        timezone     text,
        state        text NOT NULL,
        next_run_at  timestamptz,
        occurrence   bigint NOT NULL,
        run_id       text,
        attempt      integer NOT NULL,
        scheduled_at timestamptz,
        version      bigint NOT NULL,
        lease_until  timestamptz,
        due_at       timestamptz,            -- when a dispatcher should take it (NULL: never)
        created_at   timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL,
        UNIQUE (queue, name)
    );
    CREATE INDEX taskless_jobs_due ON taskless_jobs (due_at) WHERE due_at IS NOT NULL;
    CREATE TABLE taskless_runs (
        seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id        text NOT NULL REFERENCES taskless_jobs (id) ON DELETE CASCADE,
        run_id        text NOT NULL,
        attempt       integer NOT NULL,
        scheduled_at  timestamptz NOT NULL,
        started_at    timestamptz NOT NULL,
        finished_at   timestamptz,
        status        text NOT NULL,
        status_code   integer,
        error         text,
        next_retry_at timestamptz
    );
    CREATE INDEX taskless_runs_job ON taskless_runs (job_id, seq);
    """,
)

#: The schema version this code writes (rows of ``taskless_schema``).
SCHEMA_VERSION: Final = len(_MIGRATIONS)

_SELECT_JOB: Final = f"SELECT {JOB_COLUMNS} FROM taskless_jobs WHERE queue = %s AND name = %s"
_INSERT_JOB: Final = (
    f"INSERT INTO taskless_jobs ({JOB_COLUMNS}, due_at) VALUES ({', '.join(['%s'] * 23)}) "
    "ON CONFLICT (queue, name) DO NOTHING"
)
_UPDATE_JOB: Final = (
    "UPDATE taskless_jobs SET endpoint = %s, payload = %s, encrypted = %s, enabled = %s, "
    "headers = %s, retries = %s, run_at = %s, run_every = %s, timezone = %s, state = %s, "
    "next_run_at = %s, occurrence = %s, run_id = %s, attempt = %s, scheduled_at = %s, "
    "version = %s, lease_until = %s, created_at = %s, updated_at = %s, due_at = %s "
    "WHERE id = %s"
)
_CLAIM: Final = (
    f"SELECT {JOB_COLUMNS} FROM taskless_jobs WHERE due_at <= %s "
    "ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED"
)
_STATE_COLUMNS: Final = (
    "id text, state text, next_run_at timestamptz, occurrence bigint, run_id text, "
    "attempt integer, scheduled_at timestamptz, lease_until timestamptz, "
    "updated_at timestamptz, due_at timestamptz"
)
_SET_STATE: Final = """
    state = u.state, next_run_at = u.next_run_at, occurrence = u.occurrence,
    run_id = u.run_id, attempt = u.attempt, scheduled_at = u.scheduled_at,
    lease_until = u.lease_until, updated_at = u.updated_at, due_at = u.due_at
"""
_UPDATE_STATES: Final = f"""
UPDATE taskless_jobs AS j SET {_SET_STATE}
FROM (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS x({_STATE_COLUMNS})) AS u
WHERE j.id = u.id
"""
_UPDATE_STATES_IF_UNCHANGED: Final = f"""
UPDATE taskless_jobs AS j SET {_SET_STATE}
FROM (SELECT * FROM jsonb_to_recordset(%s::jsonb)
      AS x({_STATE_COLUMNS}, old_version bigint, old_run_id text, old_attempt integer)) AS u
WHERE j.id = u.id AND j.version = u.old_version AND j.run_id IS NOT DISTINCT FROM u.old_run_id
    AND j.attempt = u.old_attempt
RETURNING j.id, u.old_attempt
"""
_LOCK_JOBS: Final = (
    "SELECT id FROM taskless_jobs WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE"
)
_SELECT_FOR_UPDATE: Final = (
    f"SELECT {JOB_COLUMNS} FROM taskless_jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
)
_INSERT_RUNS: Final = """
INSERT INTO taskless_runs (job_id, run_id, attempt, scheduled_at, started_at, finished_at,
    status, status_code, error, next_retry_at)
SELECT job_id, run_id, attempt, scheduled_at, started_at, finished_at, status, status_code,
    error, next_retry_at
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (job_id text, run_id text,
    attempt integer, scheduled_at timestamptz, started_at timestamptz,
    finished_at timestamptz, status text, status_code integer, error text,
    next_retry_at timestamptz)) WITH ORDINALITY AS x
ORDER BY x.ordinality
"""
_PRUNE_RUNS: Final = """
DELETE FROM taskless_runs AS r USING (
    SELECT j.id, cut.seq FROM unnest(%s::text[]) AS j(id)
    CROSS JOIN LATERAL (
        SELECT seq FROM taskless_runs WHERE job_id = j.id ORDER BY seq DESC OFFSET %s LIMIT 1
    ) AS cut
) AS old
WHERE r.job_id = old.id AND r.seq <= old.seq
"""

# Advisory lock key space of the schema migration (with the schema name mixed in).
_LOCK_NAMESPACE: Final = "taskless schema migration"
_RETRIES_ON_CONFLICT: Final = 5
# Seconds an operation waits for a connection while the database is known to be down.
_TIMEOUT_WHILE_DOWN: Final = 1.0


def _iso(dt: datetime | None) -> str | None:
    """A timestamp for ``jsonb_to_recordset`` (microseconds kept, offset explicit)."""
    return None if dt is None else dt.isoformat()


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def _as_is(dt: datetime) -> datetime:
    return dt  # psycopg sends datetimes as timestamptz


_ROWS: Final = Rows(time_in=_as_is, time_out=_utc)


def _state_json(r: JobRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "state": r.state.value,
        "next_run_at": _iso(r.next_run_at),
        "occurrence": r.occurrence,
        "run_id": r.run_id,
        "attempt": r.attempt,
        "scheduled_at": _iso(r.scheduled_at),
        "lease_until": _iso(r.lease_until),
        "updated_at": _iso(r.updated_at),
        "due_at": _iso(r.due_at),
    }


def _run_json(job_id: str, run: Run) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "run_id": run.run_id,
        "attempt": run.attempt,
        "scheduled_at": _iso(run.scheduled_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "status": run.status,
        "status_code": run.status_code,
        "error": run.error,
        "next_retry_at": _iso(run.next_retry_at),
    }


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/db``: the URL without its password, for messages."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = params.get("port")
    user = params.get("user")
    where = f"{user}@" if user else ""
    return f"postgresql://{where}{host}{f':{port}' if port else ''}/{params.get('dbname', '')}"


def _channel_name(schema: str) -> str:
    channel = f"taskless_{schema}"
    if len(channel.encode()) > 63:  # PostgreSQL identifiers: at most 63 bytes
        channel = "taskless_" + hashlib.sha256(schema.encode()).hexdigest()[:32]
    return channel


class PostgresStore(Store):
    """Jobs in PostgreSQL, shared by any number of job server processes.

    :param url: a libpq URL or connection string (``postgresql://user:pw@host:5432/db``).
    :param history_limit: runs kept per job.
    :param min_connections: connections the pool keeps open.
    :param max_connections: connections the pool opens at most (one more is used for
        ``LISTEN``).
    :param timeout: seconds an operation waits for a connection before it fails with
        :class:`StoreUnavailable` (the database is down, or the pool is exhausted).
    :param connect_timeout: seconds a connection attempt may take.
    """

    def __init__(
        self,
        url: str,
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        min_connections: int = 2,
        max_connections: int = 10,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(history_limit=history_limit)
        if not 1 <= min_connections <= max_connections:
            raise ValueError("need 1 <= min_connections <= max_connections")
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(
                "the database URL (--database or TASKLESS_DATABASE) is not a valid PostgreSQL "
                f"URL: {_one_line(exc)}"
            ) from None
        self.url = url
        self.where = describe_url(url)
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listen_conn: Conn | None = None
        self._channel = "taskless_public"
        self._token = uuid.uuid4().hex[:12]  # tells our own NOTIFYs from other processes'
        self._background: set[asyncio.Task[Any]] = set()
        self._down = False  # the database is known to be unreachable

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgresStore:
        return cls(url, **kwargs)

    # -- life cycle

    def _connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout))}

    async def open(self) -> None:
        if self._pool is not None:
            return
        # One connection first: a wrong URL or a database that is down fails at once with
        # libpq's own words, and the connection then listens for wake-ups.
        try:
            listen_conn = await psycopg.AsyncConnection.connect(
                self.url, **self._connect_kwargs()
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.where} (is it running, and are the "
                f"URL's host, port, user and password right?): {_one_line(exc)}"
            ) from None
        self._listen_conn = listen_conn
        # While the database is away the pool warns of each reconnection attempt, several a
        # second: once per 10 s is enough (the store itself says when it is lost and back).
        throttled("psycopg.pool")
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            kwargs=self._connect_kwargs(),
            min_size=self.min_connections,
            max_size=self.max_connections,
            open=False,
            configure=self._configure,
            timeout=self.timeout,
            name="taskless",
        )
        self._pool = pool
        try:
            try:
                await pool.open(wait=True, timeout=self.connect_timeout + self.timeout)
            except PoolTimeout:
                raise StoreUnavailable(
                    f"PostgreSQL at {self.where} accepted one connection but not "
                    f"{self.min_connections} more within {self.connect_timeout + self.timeout:g} "
                    "s (max_connections reached?)"
                ) from None
            await self._migrate()
            await listen_conn.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
            )
            self._listener = asyncio.create_task(self._listen(), name="taskless-pg-listen")
        except BaseException:
            await self.close()
            raise

    @staticmethod
    async def _configure(conn: Conn) -> None:
        await conn.execute("SET TIME ZONE 'UTC'")

    async def _migrate(self) -> None:
        async def migrate(conn: Conn) -> None:
            row = await (await conn.execute("SELECT current_schema()")).fetchone()
            schema = row[0] if row else None
            if schema is None:
                raise ConfigurationError(
                    f"PostgreSQL at {self.where}: no schema of the search_path exists; create "
                    "it (CREATE SCHEMA ...) or fix the URL's options=-csearch_path=..."
                )
            self._channel = _channel_name(schema)
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{_LOCK_NAMESPACE} {schema}",),
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS taskless_schema ("
                " version integer PRIMARY KEY,"
                " upgraded_at timestamptz NOT NULL DEFAULT now(),"
                " upgraded_by text NOT NULL)"
            )
            row = await (
                await conn.execute("SELECT coalesce(max(version), 0) FROM taskless_schema")
            ).fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the database at {self.where} (schema {schema!r}) has taskless schema "
                    f"version {version}, newer than this taskless understands "
                    f"({SCHEMA_VERSION}); upgrade taskless"
                )
            from taskless import __version__

            for number in range(version + 1, SCHEMA_VERSION + 1):
                logger.info("upgrading the taskless schema of %s to version %d", self.where,
                            number)
                await conn.execute(_MIGRATIONS[number - 1].encode())
                await conn.execute(
                    "INSERT INTO taskless_schema (version, upgraded_by) VALUES (%s, %s)",
                    (number, f"taskless {__version__}"),
                )

        await self._transaction(migrate, pipeline=False)  # scripts of several statements

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- plumbing

    def _require_pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise RuntimeError("the store is not open; use 'async with store' or await open()")
        return self._pool

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """``fn(connection)`` outside a transaction (single-statement reads)."""
        return await self._run(fn, write=False)

    async def _transaction(
        self, fn: Callable[[Conn], Awaitable[T]], *, pipeline: bool = False
    ) -> T:
        """``fn(connection)`` in one transaction (in pipeline mode unless told otherwise)."""
        return await self._run(fn, write=True, pipeline=pipeline)

    async def _run(
        self, fn: Callable[[Conn], Awaitable[T]], *, write: bool, pipeline: bool = False
    ) -> T:
        pool = self._require_pool()
        conflicts = 0
        reconnected = False
        while True:
            committing = False
            broken = False
            # While the database is known to be down, fail fast rather than make every
            # caller (an API request) wait the full timeout for a connection.
            timeout = min(self.timeout, _TIMEOUT_WHILE_DOWN) if self._down else self.timeout
            try:
                async with pool.connection(timeout=timeout) as conn:
                    try:
                        if not write:
                            result = await fn(conn)
                        else:
                            # Pipeline mode: BEGIN travels with the first statement, COMMIT
                            # with the last writes; a round trip only where a result is read.
                            async with contextlib.AsyncExitStack() as stack:
                                if pipeline:
                                    await stack.enter_async_context(conn.pipeline())
                                await stack.enter_async_context(conn.transaction())
                                result = await fn(conn)
                                committing = True
                    except psycopg.Error:
                        broken = conn.broken or conn.closed
                        raise
                self._down = False
                return result
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                # Rolled back as a whole: safe to run again (``fn`` is a pure function of
                # what it reads).
                conflicts += 1
                if conflicts > _RETRIES_ON_CONFLICT:
                    raise StoreUnavailable(
                        f"PostgreSQL at {self.where}: gave up after {conflicts} conflicts "
                        f"with concurrent transactions: {exc}"
                    ) from exc
                await asyncio.sleep(random.uniform(0, 0.01 * 2**conflicts))
            except PoolClosed:
                raise RuntimeError("the store is closed") from None
            except PoolTimeout as exc:
                self._down = True
                self._check_pool_soon()
                raise StoreUnavailable(
                    f"PostgreSQL at {self.where} is unavailable: no connection within "
                    f"{timeout:g} s"
                ) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._check_pool_soon()
                if broken:
                    self._down = True
                if broken and not committing and not reconnected:
                    # The pooled connection had died (say the database restarted) and no
                    # COMMIT was sent: nothing happened, so try once on a fresh connection.
                    reconnected = True
                    continue
                message = _one_line(exc)
                raise StoreUnavailable(
                    f"PostgreSQL at {self.where} is unavailable: {message}"
                ) from exc

    def _check_pool_soon(self) -> None:
        """Have the pool drop its dead idle connections (after the database restarted)."""
        pool = self._pool
        if pool is None or any(t.get_name() == "taskless-pg-check" for t in self._background):
            return
        task = asyncio.create_task(self._check_pool(pool), name="taskless-pg-check")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _check_pool(pool: AsyncConnectionPool[Conn]) -> None:
        with contextlib.suppress(Exception):
            await pool.check()

    # -- change notification

    def _notify_payload(self, due_at: datetime | None) -> str:
        return f"{self._token} {due_at.isoformat() if due_at is not None else ''}"

    async def _send_notify(self, conn: Conn, due_at: datetime | None) -> None:
        await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, self._notify_payload(due_at)))

    def _on_notify(self, payload: str) -> None:
        token, _, due = payload.partition(" ")
        if token == self._token:
            return  # ours: listeners were told right after the commit
        try:
            due_at = datetime.fromisoformat(due) if due else None
        except ValueError:
            due_at = None
        self._notify(due_at)

    async def _listen_connection(self) -> Conn:
        conn = await psycopg.AsyncConnection.connect(self.url, **self._connect_kwargs())
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen(self) -> None:
        """Hand NOTIFYs to the listeners; reconnect (with backoff) whenever the connection
        drops, and then wake the listeners for whatever they missed meanwhile."""
        delay = 0.25
        while True:
            if self._listen_conn is None:
                try:
                    self._listen_conn = await self._listen_connection()
                except psycopg.OperationalError:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)  # back within a second of its return
                    continue
                logger.warning("PostgreSQL at %s is back", self.where)
                self._down = False
                self._check_pool_soon()
                self._notify(None)
                delay = 0.25
            conn = self._listen_conn
            try:
                async for notify in conn.notifies():
                    self._on_notify(notify.payload)
            except psycopg.OperationalError as exc:
                logger.warning(
                    "lost the connection to PostgreSQL at %s (%s); reconnecting",
                    self.where, _one_line(exc),
                )
                self._down = True
                self._check_pool_soon()
            self._listen_conn = None
            with contextlib.suppress(Exception):
                await conn.close()

    # -- jobs

    async def get(self, queue: str, name: str) -> JobRecord | None:
        async def get(conn: Conn) -> JobRecord | None:
            row = await (await conn.execute(_SELECT_JOB, (queue, name))).fetchone()
            return None if row is None else _ROWS.job(row)

        return await self._read(get)

    async def list_jobs(
        self, queue: str, *, limit: int = 100, after: str | None = None
    ) -> list[JobRecord]:
        async def list_jobs(conn: Conn) -> list[JobRecord]:
            cursor = await conn.execute(
                f"SELECT {JOB_COLUMNS} FROM taskless_jobs WHERE queue = %s AND name > %s "
                "ORDER BY name LIMIT %s",
                (queue, after or "", limit),
            )
            return [_ROWS.job(row) for row in await cursor.fetchall()]

        return await self._read(list_jobs)

    async def _modify_in(
        self, conn: Conn, queue: str, name: str, change: Change, *, notify: bool
    ) -> tuple[JobRecord | None, JobRecord | None]:
        """The read-modify-write of one job; with ``notify``, a NOTIFY when it becomes due."""
        while True:
            row = await (
                await conn.execute(_SELECT_JOB + " FOR NO KEY UPDATE", (queue, name))
            ).fetchone()
            before = None if row is None else _ROWS.job(row)
            after = apply_change(change, before, queue, name)
            if after is None:
                return before, before
            # One statement writes, and sends the NOTIFY if it wrote (a CTE).
            statement, values = (
                (_INSERT_JOB, _ROWS.insert_values(after)) if before is None
                else (_UPDATE_JOB, _ROWS.update_values(after))
            )
            if notify and after.due_at is not None:
                cursor = await conn.execute(
                    f"WITH written AS ({statement} RETURNING 1) "
                    "SELECT pg_notify(%s, %s) FROM written",
                    (*values, self._channel, self._notify_payload(after.due_at)),
                )
            else:
                cursor = await conn.execute(statement, values)
            if before is None and cursor.rowcount == 0:
                # Another transaction created the job meanwhile (and has committed, since the
                # insert waited for it): apply the change to that one instead. (A NOTIFY
                # already sent only wakes dispatchers for nothing.)
                continue
            return before, after

    async def modify(
        self, queue: str, name: str, change: Change
    ) -> tuple[JobRecord | None, JobRecord | None]:
        async def modify(conn: Conn) -> tuple[JobRecord | None, JobRecord | None]:
            return await self._modify_in(conn, queue, name, change, notify=True)

        before, after = await self._transaction(modify)
        if after is not None and after is not before:
            self._notify(after.due_at)
        return before, after

    async def modify_many(
        self, changes: Sequence[tuple[str, str, Change]]
    ) -> list[tuple[JobRecord | None, JobRecord | None] | Exception]:
        if not changes:
            return []

        async def modify_many(
            conn: Conn,
        ) -> list[tuple[JobRecord | None, JobRecord | None] | Exception]:
            # Lock the existing jobs in one order first: concurrent batches then wait for
            # each other instead of deadlocking.
            await conn.execute(
                "SELECT 1 FROM taskless_jobs AS j JOIN unnest(%s::text[], %s::text[]) "
                "AS k(queue, name) USING (queue, name) ORDER BY j.id FOR NO KEY UPDATE OF j",
                ([q for q, _, _ in changes], [n for _, n, _ in changes]),
            )
            results: list[tuple[JobRecord | None, JobRecord | None] | Exception] = []
            for queue, name, change in changes:
                try:
                    async with conn.transaction():  # a savepoint per change
                        results.append(
                            await self._modify_in(conn, queue, name, change, notify=False)
                        )
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise  # the connection or the transaction is gone: all of it failed
                except Exception as exc:  # noqa: BLE001 - one bad change does not sink the others
                    results.append(exc)
            due = _earliest_due(results)
            if due is not None:
                await self._send_notify(conn, due)
            return results

        results = await self._transaction(modify_many)
        due = _earliest_due(results)
        if due is not None:
            self._notify(due)
        return results

    async def delete(self, queue: str, name: str) -> JobRecord | None:
        async def delete(conn: Conn) -> JobRecord | None:
            # The run history goes with it (ON DELETE CASCADE).
            row = await (
                await conn.execute(
                    f"DELETE FROM taskless_jobs WHERE queue = %s AND name = %s "
                    f"RETURNING {JOB_COLUMNS}",
                    (queue, name),
                )
            ).fetchone()
            return None if row is None else _ROWS.job(row)

        return await self._transaction(delete)

    # -- dispatching

    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE
    ) -> list[JobRecord]:
        if limit < 1:
            return []

        async def claim(conn: Conn) -> list[JobRecord]:
            rows = await (await conn.execute(_CLAIM, (now, limit))).fetchall()
            if not rows:
                return []
            started = [start_attempt(_ROWS.job(row), now, lease) for row in rows]
            await conn.execute(_UPDATE_STATES, (dumps([_state_json(r) for r in started]),))
            return started

        return await self._transaction(claim)

    async def record_attempts(self, attempts: Sequence[FinishedAttempt]) -> list[bool]:
        if not attempts:
            return []
        writes = [
            (i, a, a.record) for i, a in enumerate(attempts)
            if a.record is not None and a.record is not a.started
        ]

        async def record(conn: Conn) -> dict[int, JobRecord]:
            """The records written, by index in ``attempts``."""
            ids = sorted({a.started.id for a in attempts})
            # Existing jobs, locked against deletion until the runs are in.
            cursor = await conn.execute(_LOCK_JOBS, (ids,))
            existing = {row[0] for row in await cursor.fetchall()}
            applied: set[tuple[str, int]] = set()
            if writes:
                rows = [
                    {
                        **_state_json(record),
                        "old_version": a.started.version,
                        "old_run_id": a.started.run_id,
                        "old_attempt": a.started.attempt,
                    }
                    for _, a, record in writes
                ]
                cursor = await conn.execute(_UPDATE_STATES_IF_UNCHANGED, (dumps(rows),))
                applied = {(row[0], row[1]) for row in await cursor.fetchall()}
            written = {
                i: record for i, a, record in writes
                if (a.started.id, a.started.attempt) in applied
            }
            run_of = {i: a.run for i, a in enumerate(attempts)}
            await self._refinish(conn, attempts, existing, written, run_of)
            runs = [
                _run_json(a.started.id, run_of[i])
                for i, a in enumerate(attempts) if a.started.id in existing
            ]
            if runs:
                await conn.execute(_INSERT_RUNS, (dumps(runs),))
                await conn.execute(_PRUNE_RUNS, (sorted(existing), self.history_limit))
            due = [r.due_at for r in written.values() if r.due_at is not None]
            if due:
                await self._send_notify(conn, min(due))
            return written

        written = await self._transaction(record)
        due = [r.due_at for r in written.values() if r.due_at is not None]
        if due:
            self._notify(min(due))
        return [i in written for i in range(len(attempts))]

    async def _refinish(
        self,
        conn: Conn,
        attempts: Sequence[FinishedAttempt],
        existing: set[str],
        written: dict[int, JobRecord],
        run_of: dict[int, Run],
    ) -> None:
        """Attempts whose job changed since they started: judge them against the job as it is
        now (locked for the rest of the transaction) with their ``finish``."""
        retry = [
            i for i, a in enumerate(attempts)
            if i not in written and a.finish is not None and a.started.id in existing
            and a.record is not None and a.record is not a.started
        ]
        if not retry:
            return
        ids = sorted({attempts[i].started.id for i in retry})
        rows = await (await conn.execute(_SELECT_FOR_UPDATE, (ids,))).fetchall()
        current = {row[0]: _ROWS.job(row) for row in rows}
        updates: list[dict[str, Any]] = []
        for i in retry:
            a = attempts[i]
            job = current.get(a.started.id)
            if job is None or a.finish is None:
                continue
            finished = a.finish(job)
            run_of[i] = finished.run
            if finished.applied and finished.record is not None:
                written[i] = current[a.started.id] = finished.record
                updates.append(_state_json(finished.record))
        if updates:
            await conn.execute(_UPDATE_STATES, (dumps(updates),))

    async def next_due_at(self) -> datetime | None:
        async def next_due(conn: Conn) -> datetime | None:
            row = await (
                await conn.execute(
                    "SELECT min(due_at) FROM taskless_jobs WHERE due_at IS NOT NULL"
                )
            ).fetchone()
            return _utc(row[0]) if row and row[0] is not None else None

        return await self._read(next_due)

    # -- run history

    async def runs(self, queue: str, name: str, *, limit: int = 100) -> list[Run] | None:
        async def runs(conn: Conn) -> list[Run] | None:
            async with conn.transaction():  # one snapshot for both statements
                row = await (
                    await conn.execute(
                        "SELECT id FROM taskless_jobs WHERE queue = %s AND name = %s",
                        (queue, name),
                    )
                ).fetchone()
                if row is None:
                    return None
                cursor = await conn.execute(
                    f"SELECT {RUN_COLUMNS} FROM taskless_runs WHERE job_id = %s "
                    "ORDER BY seq DESC LIMIT %s",
                    (row[0], limit),
                )
                return [_ROWS.run(r) for r in await cursor.fetchall()]

        return await self._read(runs)

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"


def _earliest_due(
    results: Sequence[tuple[JobRecord | None, JobRecord | None] | Exception],
) -> datetime | None:
    """The earliest ``due_at`` among the records written (``None``: none is ever due)."""
    due = [
        r[1].due_at for r in results
        if not isinstance(r, Exception) and r[1] is not None and r[1] is not r[0]
        and r[1].due_at is not None
    ]
    return min(due) if due else None


def _one_line(exc: BaseException) -> str:
    """libpq's message on one line (it puts hints on lines of their own)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or (
        type(exc).__name__
    )
