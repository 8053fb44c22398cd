"""``kill -9`` of a job server in the middle of a delivery, then a restart: the job is delivered
again (same run, next attempt), neither lost nor stuck."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from taskless import Queue
from taskless.core.models import JobState
from taskless.core.settings import Settings

from .conftest import LEASE, Deliveries, ServerProcess

pytestmark = pytest.mark.e2e


def queue(server: ServerProcess, deliveries: Deliveries) -> Queue[object]:
    return Queue("faults", endpoint=deliveries.endpoint, url=server.url, settings=Settings())


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_a_delivery_cut_by_kill_9_is_delivered_again_after_a_restart(
    database: str, request: pytest.FixtureRequest, tmp_path: Path,
    deliveries: Deliveries, servers: list[ServerProcess],
) -> None:
    url = (
        request.getfixturevalue("postgres_url") if database == "postgres"
        else f"sqlite:///{tmp_path}/jobs.db"
    )
    server = ServerProcess(url, tmp_path).start()
    servers.append(server)
    with queue(server, deliveries) as jobs:
        jobs.enqueue("slow-report", {"n": 1}, {"retries": 3})
    deliveries.wait_until(lambda: deliveries.of("slow-report"), 10, "a first delivery")
    time.sleep(2)  # the handler sleeps 60 s; 2 s into the delivery ...
    server.kill()  # ... kill -9
    killed_at = time.monotonic()
    server.start()

    deliveries.wait_until(lambda: len(deliveries.of("slow-report")) >= 2, LEASE + 15,
                          "a second delivery after the restart")
    first, second = deliveries.of("slow-report")[:2]
    assert second.webhook_id == first.webhook_id  # the same run: handlers can deduplicate
    assert (first.attempt, second.attempt) == (1, 2)
    if database == "postgres":
        # other processes may be running: the attempt waits for its lease to expire
        assert second.at - first.at >= LEASE - 0.5
    else:
        # one process per SQLite file: a restarted server retries at once
        assert second.at - killed_at < LEASE

    with queue(server, deliveries) as jobs:
        deadline = time.monotonic() + 15
        while (job := jobs.get("slow-report")) is None or job.state is not JobState.COMPLETED:
            assert time.monotonic() < deadline, f"not completed: {job}"
            time.sleep(0.1)
    runs = httpx.get(
        f"{server.url}/v1/queues/faults/jobs/slow-report/runs",
        headers={"authorization": f"Bearer {Settings().api_key}"},
    ).json()["runs"]
    assert (runs[0]["attempt"], runs[0]["status"]) == (2, "succeeded")
    assert len(deliveries.of("slow-report")) == 2
