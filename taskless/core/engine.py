"""The job state machine, shared by the job server and the in-memory fake.

Everything here is pure: functions take a :class:`JobRecord` (immutable) and the current time
and return a new record; stores persist what they return. Randomness (backoff jitter, run ids)
is injectable so tests are exact.

Life of a job::

    create_job ──> scheduled ──start_attempt──> running ──finish_attempt──┐
                      ^  ^                                              │
                      │  └──── failed attempt with retries left ────────┤ (same run id)
                      └─────── next occurrence (recurring) ─────────────┤
                               completed (one-off, 2xx)  <──────────────┤
                               failed (one-off, retries exhausted) <────┘
    patch_job(enabled=False) -> disabled; re-enabling -> next grid occurrence from now.

Occurrences come from :class:`~taskless.core.schedule.Schedule`, never from when a run
happened. When the server was down over several occurrences, the job runs once (for the
latest missed one) and then resumes on its grid.

Results of attempts in flight. Every change of configuration (create, replace, patch) bumps
``version``. An attempt remembers the record it started from; its result is applied while the
same attempt is still the one in flight (same job id, run id and attempt number, ``running``),
evaluated against the job's *current* configuration: a patch of ``retries``, ``headers``,
``payload`` or ``endpoint`` during a delivery does not throw its result away (which would leave
the job ``running`` until its lease expired and then deliver the occurrence again). Every change
that restarts the schedule clears the run id: re-enqueued (:func:`replace_job`), a changed
``run_at``/``run_every``/``timezone``, disabled (and re-enabled). After those, after a delete,
or once the lease expired and another attempt began, the result goes to the run history only:
it never overwrites the new configuration or revives the deleted job.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, NamedTuple

from ._frozen import fast_init
from .errors import ValidationError
from .models import JobOptions, JobState, Run, options_with
from .retry import RandomSource, backoff_delay, jittered
from .schedule import Schedule

__all__ = [
    "DEFAULT_LEASE",
    "UNSET",
    "Backoff",
    "Finished",
    "JobRecord",
    "Outcome",
    "Unset",
    "create_job",
    "finish_attempt",
    "in_flight",
    "new_job_id",
    "new_run_id",
    "patch_job",
    "replace_job",
    "run_now",
    "schedule_of",
    "start_attempt",
]

#: How long a claimed attempt may stay unanswered before another dispatcher may retry it.
DEFAULT_LEASE: Final = timedelta(seconds=120)

# A delay beyond this (a hostile Retry-After, say) is clamped so datetimes never overflow.
_MAX_DELAY: Final = 366 * 24 * 3600.0


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "not given", as opposed to ``None``."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as a store keeps it.

    :param options: the job's options, ``run_at`` always filled (with its original offset).
    :param occurrence: ``k`` of the pending (or running) occurrence.
    :param run_id: the run id of the pending occurrence once its first attempt started;
        the same across its retries, ``None`` before.
    :param attempt: attempts already made of the pending occurrence.
    :param scheduled_at: the grid time of the pending occurrence (``None`` when none is).
    :param next_run_at: when the pending occurrence (or its retry) is due; ``None`` when the
        job is disabled, completed or failed.
    :param lease_until: while ``running``: when the attempt counts as lost and may be retried.
    :param encrypted: the encrypted payload (``payload`` is then ``None``); the job server
        never sees its plaintext.
    """

    id: str
    queue: str
    name: str
    endpoint: str
    payload: Any
    options: JobOptions
    state: JobState
    next_run_at: datetime | None
    occurrence: int
    run_id: str | None
    attempt: int
    scheduled_at: datetime | None
    version: int
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime
    encrypted: dict[str, Any] | None = None

    @property
    def run_at(self) -> datetime:
        run_at = self.options.run_at
        if run_at is None:  # every constructor fills it; a store reading garbage would not
            raise ValueError(f"job {self.queue}/{self.name} has no run_at")
        return run_at

    @property
    def recurring(self) -> bool:
        return self.options.run_every is not None

    @property
    def due_at(self) -> datetime | None:
        """When a dispatcher should pick the job up: the lease end while running, else
        ``next_run_at``. ``None``: never (disabled, completed, failed)."""
        if self.state is JobState.RUNNING:
            return self.lease_until
        if self.state is JobState.SCHEDULED:
            return self.next_run_at
        return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: attempt ``n`` failing is retried after ``min(cap, base * 2**(n-1))`` s,
    jittered."""

    base: float = 1.0
    cap: float = 3600.0

    def __post_init__(self) -> None:
        # Refused here rather than at the first failed delivery, where recording it would fail.
        for name, value in (("base", self.base), ("cap", self.cap)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"the backoff {name} must be a finite number of seconds >= 0, not {value!r}"
                )

    def delay(self, attempt: int, rng: RandomSource | None = None) -> float:
        return jittered(backoff_delay(attempt, self.base, self.cap), rng)


@fast_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery attempt ended.

    :param status: the HTTP status, or ``None`` when no response came.
    :param error: why the attempt failed; ``None`` when it succeeded.
    :param retry_after: seconds from a ``Retry-After`` response header (wins over backoff).
    """

    started_at: datetime
    finished_at: datetime
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@fast_init
@dataclass(frozen=True, slots=True)
class Finished:
    """The result of :func:`finish_attempt`.

    :param record: the record to store, or the current one unchanged when not ``applied``
        (``None`` when the job no longer exists).
    :param run: the run history entry of the attempt (always recorded while the job exists).
    :param applied: ``False`` when the result was stale and only goes to the run history.
    """

    record: JobRecord | None
    run: Run
    applied: bool


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` (the same random bits, variant and version), without building a
    ``UUID`` object."""
    octets = bytearray(os.urandom(16))
    octets[6] = (octets[6] & 0x0F) | 0x40  # the version, 4: the high nibble of octet 6
    octets[8] = (octets[8] & 0x3F) | 0x80  # the variant, RFC 4122: the top bits of octet 8
    return octets.hex()


def new_job_id() -> str:
    return _uuid4_hex()


def new_run_id() -> str:
    return f"run_{_uuid4_hex()}"


_RECORD_FIELDS: Final = tuple(f.name for f in fields(JobRecord))
# The slots' own setters: what the frozen dataclass's __init__ does (one object.__setattr__
# per field), without its per-field lookups. Valid while JobRecord's __init__ only stores its
# arguments.
_RECORD_SETTERS: Final = tuple(vars(JobRecord)[name].__set__ for name in _RECORD_FIELDS)
if hasattr(JobRecord, "__post_init__"):  # pragma: no cover - a guard for future edits
    raise TypeError("_record and _evolve would skip JobRecord.__post_init__")


def _record_builders() -> tuple[Callable[..., JobRecord], Callable[..., JobRecord]]:
    """Two functions written out field by field, as dataclasses writes ``__init__``:

    * ``_record(id, queue, ..., encrypted)``: ``JobRecord(...)`` (all fields, in order);
    * ``_evolve(record, *, field=...)``: ``dataclasses.replace(record, field=...)``, an
      unknown field a :class:`TypeError` as there.

    Every delivery attempt makes two records and every enqueue one: at these rates the
    generic forms (keyword handling, a loop over the fields) cost twice as much.
    """
    setters = {f"_set_{name}": setter for name, setter in zip(_RECORD_FIELDS, _RECORD_SETTERS, strict=True)}
    make = [f"def _record({', '.join(_RECORD_FIELDS)}):", "    new = _new(JobRecord)"]
    make += [f"    _set_{name}(new, {name})" for name in _RECORD_FIELDS]
    make += ["    return new"]
    evolve = [
        f"def _evolve(record, /, *, {', '.join(f'{name}=_KEEP' for name in _RECORD_FIELDS)}):",
        "    new = _new(JobRecord)",
    ]
    evolve += [
        f"    _set_{name}(new, record.{name} if {name} is _KEEP else {name})"
        for name in _RECORD_FIELDS
    ]
    evolve += ["    return new"]
    namespace: dict[str, Any] = {"_new": object.__new__, "JobRecord": JobRecord, "_KEEP": _KEEP, **setters}
    exec("\n".join(make + evolve), namespace)  # noqa: S102 - our own text, as dataclasses does
    return namespace["_record"], namespace["_evolve"]


_KEEP: Final = object()
_record, _evolve = _record_builders()


@lru_cache(maxsize=4096)
def _schedule(run_at: datetime, run_every: str | None, timezone: str | None) -> Schedule:
    return Schedule(run_at, run_every, timezone)


def schedule_of(options: JobOptions) -> Schedule:
    """The (cached) schedule of options whose ``run_at`` is filled."""
    if options.run_at is None:
        raise ValueError("options.run_at must be filled")
    return _schedule(options.run_at, options.run_every, options.timezone)


def _at(schedule: Schedule, k: int) -> datetime | None:
    """Occurrence ``k``, or ``None`` past the end of representable time."""
    try:
        return schedule.at(k)
    except (OverflowError, ValueError):
        return None


class _Pending(NamedTuple):  # a tuple: built at every enqueue, cheaper than a dataclass
    state: JobState
    occurrence: int
    scheduled_at: datetime | None
    next_run_at: datetime | None


def _completed(occurrence: int) -> _Pending:
    return _Pending(JobState.COMPLETED, occurrence, None, None)


def _initial(options: JobOptions, now: datetime, *, fresh: bool) -> _Pending:
    """The first pending occurrence of a (re)scheduled job.

    ``fresh``: a new job; a past ``run_at`` means "as soon as possible", for a recurring job
    the latest past occurrence. Otherwise (replace, schedule patch, re-enable) a recurring job
    continues with the next grid occurrence after now, and a past one-off runs now.
    """
    run_at = options.run_at or now
    if not options.enabled:
        return _Pending(JobState.DISABLED, 0, run_at, None)
    if options.run_every is None:
        return _Pending(JobState.SCHEDULED, 0, run_at, run_at if fresh else max(run_at, now))
    if run_at > now:
        return _Pending(JobState.SCHEDULED, 0, run_at, run_at)
    schedule = schedule_of(options)
    found = schedule.last_at_or_before(now) if fresh else schedule.first_after(now)
    if found is None:
        return _completed(0)
    k, at = found
    return _Pending(JobState.SCHEDULED, k, at, at)


def _collapse_missed(schedule: Schedule, k: int, at: datetime, now: datetime) -> tuple[int, datetime]:
    """Occurrence ``k`` due at ``at``, or the latest one at or before ``now`` if later:
    missed occurrences run once."""
    if at <= now:
        try:
            latest = schedule.last_at_or_before(now)
        except (OverflowError, ValueError):
            latest = None
        if latest is not None and latest[0] > k:
            return latest
    return k, at


def _fill_run_at(options: JobOptions, now: datetime) -> JobOptions:
    if options.run_at is not None:
        return options
    return options_with(options, run_at=now)


def _with(options: JobOptions, **changes: Any) -> JobOptions:
    # The values come from validated JobOptions: a copy with them, counted as set.
    return options_with(options, **changes)


def create_job(
    queue: str,
    name: str,
    endpoint: str,
    payload: Any,
    options: JobOptions,
    now: datetime,
    *,
    id: str | None = None,
    encrypted: dict[str, Any] | None = None,
) -> JobRecord:
    """A new job. ``options.run_at`` defaults to ``now``; a past one means "as soon as
    possible" (for a recurring job: its latest past occurrence, once)."""
    options = _fill_run_at(options, now)
    pending = _initial(options, now, fresh=True)
    return _record(
        id or new_job_id(),  # id
        queue,
        name,
        endpoint,
        payload,
        options,
        pending.state,
        pending.next_run_at,
        pending.occurrence,
        None,  # run_id
        0,  # attempt
        pending.scheduled_at,
        1,  # version
        None,  # lease_until
        now,  # created_at
        now,  # updated_at
        encrypted,
    )


def replace_job(
    current: JobRecord,
    endpoint: str,
    payload: Any,
    options: JobOptions,
    now: datetime,
    *,
    encrypted: dict[str, Any] | None = None,
) -> JobRecord:
    """The upsert of an existing job: same id and ``created_at``, everything else new.

    The schedule restarts from the new options: a one-off runs at its ``run_at`` (now if
    past); a recurring job whose ``run_at`` is past continues with its next grid occurrence
    after now (so re-enqueuing the same recurring job at every deploy does not run it early).
    A delivery in flight completes, but its result no longer changes the job.
    """
    options = _fill_run_at(options, now)
    pending = _initial(options, now, fresh=False)
    return _evolve(
        current,
        endpoint=endpoint,
        payload=payload,
        encrypted=encrypted,
        options=options,
        state=pending.state,
        next_run_at=pending.next_run_at,
        occurrence=pending.occurrence,
        run_id=None,
        attempt=0,
        scheduled_at=pending.scheduled_at,
        version=current.version + 1,
        lease_until=None,
        updated_at=now,
    )


_SCHEDULE_FIELDS: Final = frozenset({"run_at", "run_every", "timezone"})
_TERMINAL: Final = frozenset({JobState.COMPLETED, JobState.FAILED})


def patch_job(
    current: JobRecord,
    now: datetime,
    *,
    payload: Any = UNSET,
    endpoint: str | Unset = UNSET,
    options: JobOptions | None = None,
    encrypted: dict[str, Any] | None | Unset = UNSET,
) -> JobRecord:
    """Change only what is given; ``options`` contributes only its explicitly set fields.

    * ``enabled=False``: the job leaves the pending queue (``disabled``, no ``next_run_at``);
      a delivery in flight completes without changing the job.
    * ``enabled=True`` on a disabled job: the next grid occurrence from now (a one-off whose
      time has passed: now).
    * a changed ``run_at``/``run_every``/``timezone``: the schedule restarts as for
      :func:`replace_job`.
    * anything else (``payload``, ``endpoint``, ``headers``, ``retries``) keeps the pending
      occurrence where it is; a delivery in flight still records its result, judged by the
      patched options.
    A completed or failed one-off stays so unless its schedule is changed.
    """
    given = {name: getattr(options, name) for name in options.model_fields_set} if options else {}
    if given.get("run_at", 0) is None:
        given["run_at"] = now
    new_options = _with(current.options, **given) if given else current.options
    changes: dict[str, Any] = {"options": new_options, "version": current.version + 1, "updated_at": now}
    if payload is not UNSET:
        changes["payload"] = payload
        if encrypted is UNSET:
            changes["encrypted"] = None
    if encrypted is not UNSET:
        changes["encrypted"] = encrypted
        if payload is UNSET:
            changes["payload"] = None
    if not isinstance(endpoint, Unset):
        changes["endpoint"] = endpoint

    schedule_changed = any(
        name in given and given[name] != getattr(current.options, name) for name in _SCHEDULE_FIELDS
    )
    terminal = current.state in _TERMINAL
    if schedule_changed or (
        new_options.enabled and current.state is JobState.DISABLED
    ):
        changes.update(_reset(_initial(new_options, now, fresh=False)))
    elif not new_options.enabled and not terminal:
        changes.update(_reset(_Pending(JobState.DISABLED, current.occurrence, current.scheduled_at, None)))
    return _evolve(current, **changes)


def _reset(pending: _Pending) -> dict[str, Any]:
    return {
        "state": pending.state,
        "occurrence": pending.occurrence,
        "scheduled_at": pending.scheduled_at,
        "next_run_at": pending.next_run_at,
        "run_id": None,
        "attempt": 0,
        "lease_until": None,
    }


def run_now(current: JobRecord, now: datetime) -> JobRecord:
    """Make the job due now: the pending occurrence (or its pending retry) is delivered
    without waiting; a completed or failed job runs again. A running job is left alone.

    :raises ValidationError: the job is disabled (field ``enabled``).
    """
    if current.state is JobState.DISABLED:
        raise ValidationError(
            "enabled", "the job is disabled; enable it (options.enabled = true) to run it"
        )
    if current.state is JobState.RUNNING:
        return current
    if current.state is JobState.SCHEDULED:
        return _evolve(current, next_run_at=now, updated_at=now)
    # completed or failed: a new occurrence of the job, delivered now
    return _evolve(
        current,
        state=JobState.SCHEDULED,
        next_run_at=now,
        scheduled_at=current.scheduled_at or now,
        run_id=None,
        attempt=0,
        lease_until=None,
        updated_at=now,
    )


def start_attempt(
    record: JobRecord,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    *,
    run_id: Callable[[], str] = new_run_id,
) -> JobRecord:
    """A due job claimed for delivery: the next attempt of its pending occurrence.

    The first attempt of an occurrence gets a new run id (kept by its retries); a recurring
    job that missed several occurrences delivers the latest one of them, once.
    """
    occurrence, scheduled_at, current_run_id = record.occurrence, record.scheduled_at, record.run_id
    if record.attempt == 0 or current_run_id is None:
        if record.recurring and scheduled_at is not None:
            occurrence, scheduled_at = _collapse_missed(
                schedule_of(record.options), occurrence, scheduled_at, now
            )
        current_run_id = run_id()
    return _evolve(
        record,
        state=JobState.RUNNING,
        occurrence=occurrence,
        scheduled_at=scheduled_at,
        run_id=current_run_id,
        attempt=record.attempt + 1,
        lease_until=now + lease,
    )


def in_flight(current: JobRecord | None, started: JobRecord) -> bool:
    """Whether the attempt that ``started`` is still the one in flight of ``current`` (the job
    as stored now), so that its result applies; see the module docstring."""
    return (
        current is not None
        and current.state is JobState.RUNNING
        and current.id == started.id
        and current.run_id is not None
        and current.run_id == started.run_id
        and current.attempt == started.attempt
    )


def finish_attempt(
    current: JobRecord | None,
    started: JobRecord,
    outcome: Outcome,
    *,
    backoff: Backoff = Backoff(),
    rng: RandomSource | None = None,
) -> Finished:
    """Apply the outcome of the attempt that ``started`` (what :func:`start_attempt` returned)
    to ``current`` (the job as stored now, ``None`` if deleted).

    2xx: the occurrence succeeded. Otherwise the attempt failed and, while retries remain, is
    retried after ``Retry-After`` if the response had one, else after the jittered backoff.
    When an occurrence is done, a recurring job moves on to its next occurrence, a one-off
    ends ``completed`` or ``failed``. A stale result (see the module docstring) changes
    nothing but the run history. A result that is not stale is evaluated against ``current``,
    so a configuration patched during the delivery (``retries``, say) is the one that counts.
    """
    now = outcome.finished_at
    run_id = started.run_id or ""
    scheduled_at = started.scheduled_at or started.run_at
    if current is None or not in_flight(current, started):
        run = _run(run_id, started.attempt, scheduled_at, outcome, None)
        return Finished(current, run, applied=False)

    if outcome.succeeded:
        record = _next_occurrence(current, now, JobState.COMPLETED)
        return Finished(record, _run(run_id, current.attempt, scheduled_at, outcome, None), True)

    if current.attempt <= current.options.retries:
        if outcome.retry_after is not None:
            delay = outcome.retry_after
        else:
            delay = backoff.delay(current.attempt, rng)
        retry_at = now + timedelta(seconds=min(max(delay, 0.0), _MAX_DELAY))
        record = _evolve(
            current,
            state=JobState.SCHEDULED,
            next_run_at=retry_at,
            lease_until=None,
            updated_at=now,
        )
        return Finished(record, _run(run_id, current.attempt, scheduled_at, outcome, retry_at), True)

    record = _next_occurrence(current, now, JobState.FAILED)
    return Finished(record, _run(run_id, current.attempt, scheduled_at, outcome, None), True)


def _next_occurrence(record: JobRecord, now: datetime, one_off_state: JobState) -> JobRecord:
    if record.recurring:
        schedule = schedule_of(record.options)
        k = record.occurrence + 1
        at = _at(schedule, k)
        if at is not None:
            k, at = _collapse_missed(schedule, k, at, now)
            pending = _Pending(JobState.SCHEDULED, k, at, at)
        else:
            pending = _completed(record.occurrence)
    else:  # a one-off: done (occurrence and scheduled_at stay, for the record)
        return _evolve(
            record, state=one_off_state, next_run_at=None, run_id=None, attempt=0,
            lease_until=None, updated_at=now,
        )
    return _evolve(record, **_reset(pending), updated_at=now)


_RUN_VALIDATOR: Final = Run.__pydantic_validator__


def _run(
    run_id: str,
    attempt: int,
    scheduled_at: datetime,
    outcome: Outcome,
    next_retry_at: datetime | None,
) -> Run:
    # Validating these few typed values (in pydantic's core) costs a third of model_construct;
    # Run.model_validate, without its Python layer.
    return _RUN_VALIDATOR.validate_python(  # type: ignore[no-any-return]
        {
            "run_id": run_id,
            "attempt": attempt,
            "scheduled_at": scheduled_at,
            "started_at": outcome.started_at,
            "finished_at": outcome.finished_at,
            "status": "succeeded" if outcome.succeeded else "failed",
            "status_code": outcome.status,
            "error": outcome.error,
            "next_retry_at": next_retry_at,
        }
    )
