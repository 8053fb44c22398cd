"""What the SQL stores share: job and run rows, their mapping to records, and the check of
a change.

SQLite and PostgreSQL keep the same columns in the same order; they differ in how a timestamp
goes in and comes back (SQLite: integer microseconds since the epoch; PostgreSQL:
``timestamptz``), which each store says with its :class:`Rows`. Booleans need nothing of
their own: both databases take Python booleans (SQLite as the integers 1 and 0), and rows are
read back through ``bool()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from taskless.core.engine import JobRecord
from taskless.core.models import JobOptions, JobState, Run
from taskless.core.timeutil import format_timestamp

from .base import Change

__all__ = ["JOB_COLUMNS", "RUN_COLUMNS", "Rows", "apply_change", "dumps"]

#: The columns a job is read from, in the order of :meth:`Rows.job`. Writes add ``due_at``.
JOB_COLUMNS: Final = (
    "id, queue, name, endpoint, payload, encrypted, enabled, headers, retries, run_at, "
    "run_every, timezone, state, next_run_at, occurrence, run_id, attempt, scheduled_at, "
    "version, lease_until, created_at, updated_at"
)
#: The columns a run is read from, in the order of :meth:`Rows.run`.
RUN_COLUMNS: Final = (
    "run_id, attempt, scheduled_at, started_at, finished_at, status, status_code, error, "
    "next_retry_at"
)

_STATES: Final = {state.value: state for state in JobState}


def dumps(value: Any) -> str:
    """Compact JSON text, as payloads and headers are stored."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def apply_change(
    change: Change, before: JobRecord | None, queue: str, name: str
) -> JobRecord | None:
    """What ``change`` writes over ``before`` (``None``: nothing).

    :raises ValueError: the change moves the job to another queue or name, or gives it another
        id.
    """
    after = change(before)
    if after is None or after is before:
        return None
    if (after.queue, after.name) != (queue, name):
        raise ValueError("a change may not move a job to another queue or name")
    if before is not None and after.id != before.id:
        raise ValueError("a change may not give a job another id")
    return after


@dataclass(frozen=True, slots=True)
class Rows:
    """The rows of one database.

    :param time_in: a timestamp as the database takes it (never called with ``None``).
    :param time_out: a timestamp as the database returned it, as an aware UTC datetime
        (never called with ``None``).
    """

    time_in: Callable[[datetime], Any]
    time_out: Callable[[Any], datetime]

    def _in(self, dt: datetime | None) -> Any:
        return None if dt is None else self.time_in(dt)

    def _out(self, value: Any) -> datetime | None:
        return None if value is None else self.time_out(value)

    def job(self, row: Sequence[Any]) -> JobRecord:
        """The record of a row of :data:`JOB_COLUMNS`."""
        (id_, queue, name, endpoint, payload, encrypted, enabled, headers, retries, run_at,
         run_every, tz, state, next_run_at, occurrence, run_id, attempt, scheduled_at, version,
         lease_until, created_at, updated_at) = row
        # Stored options were validated when written: construct without validating again.
        options = JobOptions.model_construct(
            enabled=bool(enabled),
            headers=json.loads(headers),
            retries=retries,
            run_at=datetime.fromisoformat(run_at),
            run_every=run_every,
            timezone=tz,
        )
        body = json.loads(payload)
        return JobRecord(
            id=id_,
            queue=queue,
            name=name,
            endpoint=endpoint,
            payload=None if encrypted else body,
            encrypted=body if encrypted else None,
            options=options,
            state=_STATES[state],
            next_run_at=self._out(next_run_at),
            occurrence=occurrence,
            run_id=run_id,
            attempt=attempt,
            scheduled_at=self._out(scheduled_at),
            version=version,
            lease_until=self._out(lease_until),
            created_at=self.time_out(created_at),
            updated_at=self.time_out(updated_at),
        )

    def run(self, row: Sequence[Any]) -> Run:
        """The run of a row of :data:`RUN_COLUMNS`."""
        (run_id, attempt, scheduled_at, started_at, finished_at, status, status_code, error,
         next_retry_at) = row
        return Run.model_construct(
            run_id=run_id,
            attempt=attempt,
            scheduled_at=self.time_out(scheduled_at),
            started_at=self.time_out(started_at),
            finished_at=self._out(finished_at),
            status=status,
            status_code=status_code,
            error=error,
            next_retry_at=self._out(next_retry_at),
        )

    def state_values(self, r: JobRecord) -> tuple[Any, ...]:
        """``state, next_run_at, occurrence, run_id, attempt, scheduled_at``."""
        return (
            r.state.value, self._in(r.next_run_at), r.occurrence, r.run_id, r.attempt,
            self._in(r.scheduled_at),
        )

    def insert_values(self, r: JobRecord) -> tuple[Any, ...]:
        """:data:`JOB_COLUMNS`, then ``due_at``."""
        return (r.id, r.queue, r.name, *self._values(r))

    def update_values(self, r: JobRecord) -> tuple[Any, ...]:
        """:data:`JOB_COLUMNS` but ``id``, ``queue`` and ``name``, then ``due_at``, then ``id``
        (the key)."""
        return (*self._values(r), r.id)

    def _values(self, r: JobRecord) -> tuple[Any, ...]:
        o = r.options
        return (
            r.endpoint,
            dumps(r.encrypted if r.encrypted is not None else r.payload),
            r.encrypted is not None,
            o.enabled,
            dumps(o.headers),
            o.retries,
            format_timestamp(r.run_at),
            o.run_every,
            o.timezone,
            *self.state_values(r),
            r.version,
            self._in(r.lease_until),
            self.time_in(r.created_at),
            self.time_in(r.updated_at),
            self._in(r.due_at),
        )
