"""The store interface of the job server.

A store keeps jobs (:class:`~taskless.core.engine.JobRecord`) and their run history. It does
no scheduling logic of its own: every change is computed by the pure functions of
:mod:`taskless.core.engine`, and the store persists the result atomically. Implementations:
:class:`~taskless.server.store.sqlite.SQLiteStore` (embedded, one process) and, for several
job server processes on one database, a PostgreSQL store.

Contract (checked for every implementation by ``tests/server/test_store_contract.py``):

* ``(queue, name)`` is unique; ``id`` never changes for the life of a job.
* Database failures raise :class:`StoreUnavailable`.
* :meth:`Store.modify` is an atomic read-modify-write of one job: ``change`` sees the current
  record (or ``None``) and returns the record to write, or ``None`` to write nothing; an
  exception from ``change`` aborts without writing anything. :meth:`Store.modify_many` does
  several in one transaction (one failing change aborts only itself).
* :meth:`Store.claim_due` atomically takes up to ``limit`` jobs whose :attr:`JobRecord.due_at`
  is at or before ``now`` (scheduled and due, or running with an expired lease), earliest
  first, applies :func:`~taskless.core.engine.start_attempt` to each and returns the started
  records. Two concurrent claims never return the same attempt.
* :meth:`Store.record_attempts` stores finished attempts in one batch. Each carries the
  record its attempt *started* from and the record computed from it; that record is written
  if the stored job still has the same ``version``, ``run_id`` and ``attempt``
  (compare-and-set). Otherwise, when the attempt carries ``finish``, the store calls it, in
  the same transaction, with the job as stored now (its configuration was patched during the
  delivery, or the attempt is stale) and writes what it returns if ``applied``, recording its
  run; else only the run goes to the history. Runs of a deleted job are dropped; a result
  never revives a job.
* :meth:`Store.delete` removes the job and its run history.
* :meth:`Store.next_due_at` is the earliest ``due_at`` of all jobs (``None`` if none is due
  ever); dispatchers sleep until then.
* After a committed change that may make a job due, a store calls its listeners (see
  :meth:`Store.add_listener`) with the earliest new ``due_at`` (``None``: unknown, check); a
  store shared by several processes also calls them for changes made by other processes,
  as far as it can tell.
* The run history keeps at least the latest ``history_limit`` runs of each job (older ones
  may be pruned).

Times are aware datetimes; stores keep microsecond precision and return UTC, except
``options.run_at`` which keeps its original offset.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from taskless.core.engine import DEFAULT_LEASE, Finished, JobRecord
from taskless.core.errors import TasklessError
from taskless.core.models import Run

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "Change",
    "FinishedAttempt",
    "Listener",
    "Store",
    "StoreUnavailable",
]

#: Runs kept per job by default.
DEFAULT_HISTORY_LIMIT = 100

#: Given the job as stored (``None``: no such job), the record to write (``None``: no write).
Change = Callable[[JobRecord | None], JobRecord | None]
#: Called with the earliest ``due_at`` a change introduced (``None``: unknown).
Listener = Callable[[datetime | None], None]


class StoreUnavailable(TasklessError):
    """The database failed (unreachable, locked, full); the API answers 503."""

    code = "unavailable"


@dataclass(frozen=True, slots=True)
class FinishedAttempt:
    """One finished delivery attempt to record.

    :param started: the record as :meth:`Store.claim_due` returned it (the compare-and-set key:
        its ``id``, ``version``, ``run_id`` and ``attempt``).
    :param record: the record to store if the job is unchanged since ``started``
        (from :func:`~taskless.core.engine.finish_attempt`).
    :param run: the run history entry.
    :param finish: when the job changed since ``started``: given the job as stored now,
        :func:`~taskless.core.engine.finish_attempt` against it (a patch of ``retries`` during
        the delivery then counts; a re-enqueued, rescheduled or disabled job makes the result
        stale). ``None``: any change makes the result stale.
    """

    started: JobRecord
    record: JobRecord | None
    run: Run
    finish: Callable[[JobRecord], Finished] | None = None


class Store(abc.ABC):
    """Persistent jobs and run history. Async; safe to use from one event loop."""

    def __init__(self, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be >= 1")
        self.history_limit = history_limit
        self._listeners: list[Listener] = []

    # -- life cycle

    async def open(self) -> None:
        """Connect and create or migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- change notification

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(due_at)`` (in the event loop; it must return quickly) after changes
        that may make a job due: dispatchers wake up on it."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        self._listeners.remove(callback)

    def _notify(self, due_at: datetime | None) -> None:
        for callback in list(self._listeners):
            callback(due_at)

    # -- jobs

    @abc.abstractmethod
    async def get(self, queue: str, name: str) -> JobRecord | None:
        """The job, or ``None``."""

    @abc.abstractmethod
    async def list_jobs(
        self, queue: str, *, limit: int = 100, after: str | None = None
    ) -> list[JobRecord]:
        """Jobs of ``queue`` ordered by name, at most ``limit``, names after ``after``."""

    @abc.abstractmethod
    async def modify(self, queue: str, name: str, change: Change) -> tuple[JobRecord | None, JobRecord | None]:
        """Atomic read-modify-write of one job; returns ``(before, after)``.

        ``after`` is what ``change`` returned, or ``before`` when it returned ``None``.
        Exceptions from ``change`` propagate and nothing is written.
        """

    @abc.abstractmethod
    async def modify_many(
        self, changes: Sequence[tuple[str, str, Change]]
    ) -> list[tuple[JobRecord | None, JobRecord | None] | Exception]:
        """:meth:`modify` for each ``(queue, name, change)``, in one transaction, in order.
        A change that raises yields its exception in the result list and writes nothing;
        the others are written."""

    @abc.abstractmethod
    async def delete(self, queue: str, name: str) -> JobRecord | None:
        """Remove the job and its run history; the removed job, or ``None``."""

    # -- dispatching

    @abc.abstractmethod
    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE
    ) -> list[JobRecord]:
        """Start the next attempt of up to ``limit`` due jobs (see the module docstring)."""

    @abc.abstractmethod
    async def record_attempts(self, attempts: Sequence[FinishedAttempt]) -> list[bool]:
        """Store finished attempts; per attempt, whether its record was applied (``False``:
        stale, history only or dropped)."""

    @abc.abstractmethod
    async def next_due_at(self) -> datetime | None:
        """The earliest time a job is due (a lease expires included), or ``None``."""

    # -- run history

    @abc.abstractmethod
    async def runs(self, queue: str, name: str, *, limit: int = 100) -> list[Run] | None:
        """The run history of a job, newest first, at most ``limit``; ``None`` when there is
        no such job."""
