"""How fast the in-memory fake is: enqueue N jobs through a real ``Queue`` and deliver them in
direct mode (the handler function called, payload validated against its type).

    .venv/bin/python bench/bench_fake.py            # 10,000 jobs, best of 5 rounds
    .venv/bin/python bench/bench_fake.py -n 50000 -r 3

Each enqueue goes the whole way a test's does: the Queue client (payload and options checks,
the response read back into a ``Job``), the memory transport, the job server API of
``taskless.core.api`` and the state machine of ``taskless.core.engine``; each delivery starts
and finishes an attempt there and calls the handler. The garbage collector stays on, as in a
test run, and the fake keeps its records (calls, enqueues, deliveries, runs). The goal: 10,000
jobs well under a second on a developer machine; the round with the lowest total is shown.

Also times the fake's virtual clock: a weekly job driven over a year in 15-minute steps.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from taskless.core.models import JobMeta
from taskless.testing import TasklessFake


class Email(BaseModel):
    to: str
    n: int


def one_round(count: int) -> tuple[float, float, float]:
    fake = TasklessFake(start="2024-01-01T00:00:00Z", mode="direct")
    received = 0

    def send_email(payload: Email, meta: JobMeta) -> None:
        nonlocal received
        received += 1

    fake.handle("emails", send_email)
    queue = fake.queue("emails")
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(count):
        queue.enqueue(f"welcome:{i}", {"to": f"user{i}@example.com", "n": i})
    enqueued = time.perf_counter()
    deliveries = fake.run_due()
    finished = time.perf_counter()
    cpu = time.process_time() - cpu
    if received != count or len(deliveries) != count:
        raise SystemExit(f"expected {count} deliveries, got {received}")
    return enqueued - started, finished - enqueued, cpu


def weekly_year(step: timedelta | str = timedelta(minutes=15)) -> tuple[int, float]:
    fake = TasklessFake(start="2024-01-01T00:00:00Z", mode="direct")
    fake.handle("weekly", lambda payload: None)
    fake.queue("weekly").enqueue(
        "weekly", {"k": 1}, {"runAt": "2024-01-07T06:00:00Z", "runEvery": "P1W"}
    )
    end = datetime(2025, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    delivered = 0
    while fake.now < end:
        delivered += len(fake.advance(step))
    return delivered, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--jobs", type=int, default=10_000)
    parser.add_argument("-r", "--rounds", type=int, default=5)
    args = parser.parse_args()
    results = [one_round(args.jobs) for _ in range(args.rounds)]
    enqueue, deliver, cpu = min(results, key=lambda r: r[0] + r[1])
    total = enqueue + deliver
    print(f"{args.jobs} jobs, direct mode, best of {args.rounds} rounds (wall clock):")
    print(f"  enqueue  {enqueue:6.3f} s  ({enqueue / args.jobs * 1e6:5.1f} us/job)")
    print(f"  deliver  {deliver:6.3f} s  ({deliver / args.jobs * 1e6:5.1f} us/job)")
    print(f"  total    {total:6.3f} s  ({args.jobs / total:,.0f} jobs/s; CPU {cpu:.3f} s)")
    steps = int(timedelta(days=366) / timedelta(minutes=15))
    for step in (timedelta(minutes=15), "PT15M"):
        delivered, seconds = weekly_year(step)
        print(f"weekly job over 2024 in 15-minute steps ({steps} steps of {step!r}): "
              f"{delivered} deliveries in {seconds:.3f} s")


if __name__ == "__main__":
    main()
