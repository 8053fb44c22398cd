"""Several job server processes on one database: PostgreSQL shares the work out and delivers
everything once; a second process on a SQLite file refuses to start."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from taskless import Queue
from taskless.core.settings import Settings
from taskless.core.timeutil import parse_timestamp

from .conftest import Deliveries, ServerProcess

pytestmark = pytest.mark.e2e

#: The simulated schedule: PT1S stands for PT1M, so 12 s stand for 12 minutes.
EVERY = timedelta(seconds=1)
SPAN = timedelta(seconds=12)
ONE_OFFS = 200


def queue(server: ServerProcess, deliveries: Deliveries) -> Queue[object]:
    return Queue("faults", endpoint=deliveries.endpoint, url=server.url, settings=Settings())


def two_servers(
    postgres_url: str, tmp_path: Path, servers: list[ServerProcess]
) -> tuple[ServerProcess, ServerProcess]:
    """Servers ``a`` and ``b`` on one PostgreSQL database, both started."""
    for name in ("a", "b"):
        servers.append(ServerProcess(postgres_url, tmp_path, name).start())
    return servers[-2], servers[-1]


def test_two_servers_deliver_each_job_and_each_occurrence_exactly_once(
    postgres_url: str, tmp_path: Path, deliveries: Deliveries, servers: list[ServerProcess]
) -> None:
    a, b = two_servers(postgres_url, tmp_path, servers)

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    end = start + SPAN
    with queue(a, deliveries) as via_a, queue(b, deliveries) as via_b:
        via_a.enqueue("every-minute", {"kind": "recurring"},
                      {"run_at": start, "run_every": "PT1S"})
        for i in range(ONE_OFFS):  # spread over the span, enqueued through both servers
            at = start + SPAN * (i / ONE_OFFS)
            (via_a if i % 2 else via_b).enqueue(f"once-{i:03d}", {"i": i}, {"run_at": at})
        while datetime.now(UTC) < end + timedelta(seconds=0.5):
            time.sleep(0.1)
        via_b.delete("every-minute")
    deliveries.wait_until(
        lambda: sum(1 for job in deliveries.counts() if job.startswith("once-")) == ONE_OFFS,
        15, "every one-off job delivered",
    )
    time.sleep(1)  # anything delivered twice would have arrived by now

    counts = deliveries.counts()
    once = {job: n for job, n in counts.items() if job.startswith("once-")}
    assert len(once) == ONE_OFFS
    assert set(once.values()) == {1}, {job: n for job, n in once.items() if n != 1}

    recurring = deliveries.of("every-minute")
    scheduled = sorted(parse_timestamp(d.scheduled_at) for d in recurring)
    assert len(scheduled) == len(set(scheduled)), "an occurrence was delivered twice"
    expected = [start + k * EVERY for k in range(int(SPAN / EVERY) + 1)]
    assert scheduled == expected, "one delivery per occurrence, none missed"
    assert len({d.webhook_id for d in recurring}) == len(recurring)

    # the work really was shared out (each server logs what it delivered)
    delivered_by = {s.log_path.stem: s.log().count("delivered faults/") for s in (a, b)}
    assert all(n > 0 for n in delivered_by.values()), delivered_by
    assert sum(delivered_by.values()) == ONE_OFFS + len(recurring)


def test_twenty_threads_enqueuing_one_name_make_one_job(
    postgres_url: str, tmp_path: Path, deliveries: Deliveries, servers: list[ServerProcess]
) -> None:
    a, b = two_servers(postgres_url, tmp_path, servers)
    later = datetime.now(UTC) + timedelta(hours=1)  # stays in the queue for inspection
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def enqueue(i: int) -> None:
        try:
            with queue(a if i % 2 else b, deliveries) as jobs:
                barrier.wait()
                jobs.enqueue("same-name", {"thread": i}, {"run_at": later})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    listed = httpx.get(
        f"{a.url}/v1/queues/faults/jobs",
        headers={"authorization": f"Bearer {Settings().api_key}"},
    ).json()["jobs"]
    assert [job["name"] for job in listed] == ["same-name"]
    assert listed[0]["payload"] in [{"thread": i} for i in range(20)]


def test_a_second_server_on_one_sqlite_file_refuses_to_start(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    database = f"sqlite:///{tmp_path}/jobs.db"
    servers.append(ServerProcess(database, tmp_path, "first").start())
    second = subprocess.run(
        [sys.executable, "-m", "taskless", "dev", "--port", "0", "--database", database],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )
    assert second.returncode == 2
    message = second.stderr.strip().splitlines()[-1]
    assert "is in use by another job server process" in message
    assert "PostgreSQL" in message
    assert "Traceback" not in second.stderr
