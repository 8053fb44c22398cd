"""The embedded store: one SQLite file in WAL mode, for a single job server process.

All database work runs on one dedicated thread that owns the connection, so the event loop
never blocks on disk and never needs a lock; each call is one hop to that thread however many
jobs it handles (claims and results are batched by the dispatcher).

Times are stored as integer microseconds since the Unix epoch (UTC), which sort and compare
exactly; ``run_at`` is also kept as text to remember the offset it was given with.

One process per file, enforced: an open store holds an exclusive lock on ``<file>.lock``, and a
second store (a second job server) on the same file refuses to open with a message saying so.
Two processes would each believe they own every lease (a starting store hands the running
attempts left by a crashed predecessor out again at once) and would not wake each other; for
several job server processes, use PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from taskless.core.engine import DEFAULT_LEASE, JobRecord, start_attempt
from taskless.core.errors import ConfigurationError
from taskless.core.models import Run

from ._sql import JOB_COLUMNS, RUN_COLUMNS, Rows, apply_change
from .base import DEFAULT_HISTORY_LIMIT, Change, FinishedAttempt, Store, StoreUnavailable

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

T = TypeVar("T")

#: The schema this code writes; stored in ``PRAGMA user_version``.
SCHEMA_VERSION: Final = 1

#: SQLite's result code for "file is not a database".
_SQLITE_NOTADB: Final = 26

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)

_SCHEMA: Final = """
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    queue        TEXT NOT NULL,
    name         TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    payload      TEXT NOT NULL,      -- JSON: the payload, or the encrypted form
    encrypted    INTEGER NOT NULL,   -- 1: payload holds {"alg", "kid", "iv", "data"}
    enabled      INTEGER NOT NULL,
    headers      TEXT NOT NULL,      -- JSON object
    retries      INTEGER NOT NULL,
    run_at       TEXT NOT NULL,      -- ISO-8601 with the offset it was given with
    run_every    TEXT,
    timezone     TEXT,
    state        TEXT NOT NULL,
    next_run_at  INTEGER,            -- times: microseconds since the epoch, UTC
    occurrence   INTEGER NOT NULL,
    run_id       TEXT,
    attempt      INTEGER NOT NULL,
    scheduled_at INTEGER,
    version      INTEGER NOT NULL,
    lease_until  INTEGER,
    due_at       INTEGER,            -- when a dispatcher should take it (NULL: never)
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (queue, name)
);
CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE runs (
    seq           INTEGER PRIMARY KEY,
    job_id        TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    scheduled_at  INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    status        TEXT NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    next_retry_at INTEGER
);
CREATE INDEX runs_job ON runs (job_id, seq);
"""

_SELECT_JOB: Final = f"SELECT {JOB_COLUMNS} FROM jobs WHERE queue=? AND name=?"
_INSERT_JOB: Final = (
    f"INSERT INTO jobs ({JOB_COLUMNS}, due_at) VALUES ({', '.join('?' * 23)})"
)
_UPDATE_JOB: Final = """
UPDATE jobs SET endpoint=?, payload=?, encrypted=?, enabled=?, headers=?, retries=?, run_at=?,
    run_every=?, timezone=?, state=?, next_run_at=?, occurrence=?, run_id=?, attempt=?,
    scheduled_at=?, version=?, lease_until=?, created_at=?, updated_at=?, due_at=?
WHERE id=?
"""
_UPDATE_STATE: Final = """
UPDATE jobs SET state=?, next_run_at=?, occurrence=?, run_id=?, attempt=?, scheduled_at=?,
    lease_until=?, updated_at=?, due_at=?
WHERE id=?
"""
_UPDATE_STATE_IF_UNCHANGED: Final = _UPDATE_STATE.rstrip() + (
    " AND version=? AND run_id IS ? AND attempt=?"
)
_INSERT_RUN: Final = """
INSERT INTO runs (job_id, run_id, attempt, scheduled_at, started_at, finished_at, status,
    status_code, error, next_retry_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id=?)
"""
_PRUNE_RUNS: Final = """
DELETE FROM runs WHERE job_id=? AND seq <= (
    SELECT seq FROM runs WHERE job_id=? ORDER BY seq DESC LIMIT 1 OFFSET ?)
"""


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _us_or_none(dt: datetime | None) -> int | None:
    return None if dt is None else (dt - _EPOCH) // _US


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_ROWS: Final = Rows(time_in=_us, time_out=_dt)


def _state_update_values(r: JobRecord) -> tuple[Any, ...]:
    return (
        *_ROWS.state_values(r), _us_or_none(r.lease_until), _us(r.updated_at),
        _us_or_none(r.due_at), r.id,
    )


def _run_values(job_id: str, run: Run) -> tuple[Any, ...]:
    return (
        job_id, run.run_id, run.attempt, _us(run.scheduled_at), _us(run.started_at),
        _us_or_none(run.finished_at), run.status, run.status_code, run.error,
        _us_or_none(run.next_retry_at), job_id,
    )


def database_path(url: str) -> str:
    """The file of a ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or
    ``sqlite://:memory:`` URL (a bare path is taken as is)."""
    if url[: len("sqlite://")].lower() == "sqlite://":
        rest = url[len("sqlite://"):]
        if rest == ":memory:" or rest == "/:memory:":
            return ":memory:"
        if not rest.startswith("/"):
            raise ConfigurationError(
                f"TASKLESS_DATABASE {url!r}: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        return rest[1:]
    return url


def _lock_path(path: str) -> str:
    return os.path.realpath(path) + ".lock"


def _lock_exclusively(path: str) -> int:
    """Hold an exclusive lock on ``<path>.lock`` (a file descriptor, held while open), or
    refuse: one job server process per SQLite file. The lock sits beside the real file, so
    every path to it (relative, absolute, through a symlink) meets the same lock."""
    lock_path = _lock_path(path)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise ConfigurationError(
                f"the SQLite database {path!r} is in use by another job server process"
                f"{f' (pid {holder})' if holder.isdigit() else ''}. A SQLite file serves one "
                "process: stop the other one, give this one a file of its own "
                "(--database sqlite:///other.db), or run several servers on PostgreSQL "
                "(--database postgresql://...)"
            ) from None
        # A store that fails to open removes the lock file while it holds the lock: if that
        # happened between our open and our lock, we locked a file no other store will meet.
        if _same_file(fd, lock_path):
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


class SQLiteStore(Store):
    """Jobs in a SQLite file (WAL). One job server process per file.

    :param path: the database file (created with its directory) or ``":memory:"``.
    :param history_limit: runs kept per job.
    """

    def __init__(self, path: str | os.PathLike[str], *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        super().__init__(history_limit=history_limit)
        self.path = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock: int | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        return cls(database_path(url), **kwargs)

    # -- plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the store is not open; use 'async with store' or await open()")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except sqlite3.OperationalError as exc:  # locked, disk full, read-only, ...
            raise StoreUnavailable(f"the SQLite database {self.path!r} failed: {exc}") from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one write transaction on the database thread."""
        return await self._call(self._transaction, fn)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the store is closed")
        return self._conn

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # -- life cycle

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="taskless-sqlite")
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"TASKLESS_DATABASE: cannot create the folder of {self.path!r} "
                    f"({exc.strerror}); choose a writable path such as "
                    "sqlite:///.taskless/taskless.db"
                ) from None
            self._lock = _lock_exclusively(self.path)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except BaseException:
            self._unlock(remove=True)
            raise
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._unlock(remove=True)
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, read-only, cannot open: the store is unavailable
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_NOTADB:
                raise ConfigurationError(
                    f"TASKLESS_DATABASE: the file {self.path!r} is not a SQLite database; "
                    "give the path of a Taskless database, or of a new file to create"
                ) from None
            raise ConfigurationError(
                f"TASKLESS_DATABASE: the SQLite database {self.path!r} cannot be used ({exc})"
            ) from None
        except BaseException:
            conn.close()
            self._unlock(remove=True)
            raise
        self._conn = conn

    def _unlock(self, *, remove: bool = False) -> None:
        """Release the lock; with ``remove``, after removing the lock file (a start that
        failed leaves nothing behind)."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        if remove:
            with contextlib.suppress(OSError):  # gone, or (Windows) still open elsewhere
                os.unlink(_lock_path(self.path))
        os.close(lock)  # closing the file releases the lock

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the database {self.path!r} has schema version {version}, newer than this "
                    f"taskless understands ({SCHEMA_VERSION}); upgrade taskless"
                )
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            # One process per file: attempts left running by a previous process are lost,
            # so make them due again now instead of waiting for their leases.
            now = _us(datetime.now(UTC))
            conn.execute(
                "UPDATE jobs SET due_at = ? WHERE state = 'running' AND due_at > ?", (now, now)
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_sync)
        executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._unlock()

    # -- jobs

    async def get(self, queue: str, name: str) -> JobRecord | None:
        return await self._call(self._get_sync, queue, name)

    def _get_sync(self, queue: str, name: str) -> JobRecord | None:
        row = self._connection().execute(_SELECT_JOB, (queue, name)).fetchone()
        return None if row is None else _ROWS.job(row)

    async def list_jobs(
        self, queue: str, *, limit: int = 100, after: str | None = None
    ) -> list[JobRecord]:
        return await self._call(self._list_jobs_sync, queue, limit, after)

    def _list_jobs_sync(self, queue: str, limit: int, after: str | None) -> list[JobRecord]:
        rows = self._connection().execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE queue=? AND name>? ORDER BY name LIMIT ?",
            (queue, after or "", limit),
        ).fetchall()
        return [_ROWS.job(row) for row in rows]

    async def modify(
        self, queue: str, name: str, change: Change
    ) -> tuple[JobRecord | None, JobRecord | None]:
        before, after = await self._write(
            partial(self._modify_sync, queue=queue, name=name, change=change)
        )
        if after is not None and after is not before:
            self._notify(after.due_at)
        return before, after

    def _modify_sync(
        self, conn: sqlite3.Connection, *, queue: str, name: str, change: Change
    ) -> tuple[JobRecord | None, JobRecord | None]:
        row = conn.execute(_SELECT_JOB, (queue, name)).fetchone()
        before = None if row is None else _ROWS.job(row)
        after = apply_change(change, before, queue, name)
        if after is None:
            return before, before
        if before is None:
            conn.execute(_INSERT_JOB, _ROWS.insert_values(after))
        else:
            conn.execute(_UPDATE_JOB, _ROWS.update_values(after))
        return before, after

    async def modify_many(
        self, changes: Sequence[tuple[str, str, Change]]
    ) -> list[tuple[JobRecord | None, JobRecord | None] | Exception]:
        results = await self._write(partial(self._modify_many_sync, changes))
        due = [
            r[1].due_at for r in results
            if not isinstance(r, Exception) and r[1] is not None and r[1] is not r[0]
        ]
        if due:
            known = [d for d in due if d is not None]
            self._notify(min(known) if known else None)
        return results

    def _modify_many_sync(
        self, changes: Sequence[tuple[str, str, Change]], conn: sqlite3.Connection
    ) -> list[tuple[JobRecord | None, JobRecord | None] | Exception]:
        results: list[tuple[JobRecord | None, JobRecord | None] | Exception] = []
        for i, (queue, name, change) in enumerate(changes):
            conn.execute(f"SAVEPOINT change{i}")
            try:
                results.append(self._modify_sync(conn, queue=queue, name=name, change=change))
            except Exception as exc:  # noqa: BLE001 - one bad change does not sink the others
                conn.execute(f"ROLLBACK TO change{i}")
                results.append(exc)
            conn.execute(f"RELEASE change{i}")
        return results

    async def delete(self, queue: str, name: str) -> JobRecord | None:
        return await self._write(partial(self._delete_sync, queue, name))

    def _delete_sync(self, queue: str, name: str, conn: sqlite3.Connection) -> JobRecord | None:
        row = conn.execute(_SELECT_JOB, (queue, name)).fetchone()
        if row is None:
            return None
        record = _ROWS.job(row)
        conn.execute("DELETE FROM jobs WHERE id=?", (record.id,))
        conn.execute("DELETE FROM runs WHERE job_id=?", (record.id,))
        return record

    # -- dispatching

    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE
    ) -> list[JobRecord]:
        return await self._write(partial(self._claim_sync, now, limit, lease))

    def _claim_sync(
        self, now: datetime, limit: int, lease: timedelta, conn: sqlite3.Connection
    ) -> list[JobRecord]:
        rows = conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE due_at <= ? ORDER BY due_at LIMIT ?",
            (_us(now), limit),
        ).fetchall()
        started = [start_attempt(_ROWS.job(row), now, lease) for row in rows]
        conn.executemany(_UPDATE_STATE, [_state_update_values(r) for r in started])
        return started

    async def record_attempts(self, attempts: Sequence[FinishedAttempt]) -> list[bool]:
        if not attempts:
            return []
        written = await self._write(partial(self._record_sync, attempts))
        due = [record.due_at for record in written
               if record is not None and record.due_at is not None]
        if due:
            self._notify(min(due))
        return [record is not None for record in written]

    def _record_sync(
        self, attempts: Sequence[FinishedAttempt], conn: sqlite3.Connection
    ) -> list[JobRecord | None]:
        """Per attempt, the record written (``None``: not applied)."""
        written: list[JobRecord | None] = []
        runs = []
        execute = conn.execute
        for attempt in attempts:
            record, started, run = attempt.record, attempt.started, attempt.run
            if record is None or record is started:
                written.append(None)
                runs.append(_run_values(started.id, run))
                continue
            cursor = execute(
                _UPDATE_STATE_IF_UNCHANGED,
                (*_state_update_values(record), started.version, started.run_id, started.attempt),
            )
            if cursor.rowcount == 1:
                written.append(record)
            elif attempt.finish is not None:
                # Changed since the attempt started: judge the result against the job as it
                # is now (this transaction holds the write lock, so it stays so).
                row = execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (started.id,)).fetchone()
                finished = attempt.finish(_ROWS.job(row)) if row is not None else None
                if finished is not None:
                    run = finished.run
                if finished is not None and finished.applied and finished.record is not None:
                    execute(_UPDATE_STATE, _state_update_values(finished.record))
                    written.append(finished.record)
                else:
                    written.append(None)
            else:
                written.append(None)
            runs.append(_run_values(started.id, run))
        conn.executemany(_INSERT_RUN, runs)
        keep = self.history_limit
        conn.executemany(
            _PRUNE_RUNS, [(job_id, job_id, keep) for job_id in {a.started.id for a in attempts}]
        )
        return written

    async def next_due_at(self) -> datetime | None:
        return await self._call(self._next_due_sync)

    def _next_due_sync(self) -> datetime | None:
        (due,) = self._connection().execute(
            "SELECT min(due_at) FROM jobs WHERE due_at IS NOT NULL"
        ).fetchone()
        return None if due is None else _dt(due)

    # -- run history

    async def runs(self, queue: str, name: str, *, limit: int = 100) -> list[Run] | None:
        return await self._call(self._runs_sync, queue, name, limit)

    def _runs_sync(self, queue: str, name: str, limit: int) -> list[Run] | None:
        conn = self._connection()
        row = conn.execute("SELECT id FROM jobs WHERE queue=? AND name=?", (queue, name)).fetchone()
        if row is None:
            return None
        rows = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE job_id=? ORDER BY seq DESC LIMIT ?",
            (row[0], limit),
        ).fetchall()
        return [_ROWS.run(r) for r in rows]

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
