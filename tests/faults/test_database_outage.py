"""PostgreSQL stopped for 5 s under load and started again: the job server logs it and keeps
running, enqueues during the outage fail promptly with 503, and every accepted job is
delivered once the database is back."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest_postgres import RestartableDatabase

from taskless import Queue
from taskless.core.errors import ServerError
from taskless.core.settings import Settings

from .conftest import Deliveries, ServerProcess

pytestmark = pytest.mark.e2e

OUTAGE = 5.0


@dataclass(frozen=True)
class Attempt:
    name: str
    started: float
    took: float
    status: int  # 201, or the error's status


def test_an_outage_under_load_loses_no_job_and_fails_enqueues_promptly(
    restartable_postgres: RestartableDatabase, tmp_path: Path, deliveries: Deliveries,
    servers: list[ServerProcess],
) -> None:
    server = ServerProcess(restartable_postgres.url, tmp_path).start()
    servers.append(server)
    attempts: list[Attempt] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        n = 0
        with Queue("faults", endpoint=deliveries.endpoint, url=server.url,
                   settings=Settings()) as jobs:
            while not stop.is_set():
                name = f"w{worker}-{n:04d}"
                n += 1
                started = time.monotonic()
                try:
                    jobs.enqueue(name, {"n": n})
                    status = 201
                except ServerError as exc:
                    assert exc.status == 503 and exc.error_code == "unavailable", exc
                    status = exc.status
                with lock:
                    attempts.append(Attempt(name, started, time.monotonic() - started, status))
                time.sleep(0.02)

    workers = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2)
        down = time.monotonic()
        restartable_postgres.stop()
        time.sleep(OUTAGE)
        restartable_postgres.start()
        up = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)

    assert server.alive, server.log()[-3000:]
    accepted = [a.name for a in attempts if a.status == 201]
    refused = [a for a in attempts if a.status == 503]
    assert len(accepted) > 100
    assert refused, "enqueues during the outage must fail"
    # A clear error, not a hang: once the store knows the database is down it fails within
    # about a second; a request already waiting for a connection when the database went away
    # waits at most the store's 5 s timeout (docs/deployment.md), plus a loaded machine's slack.
    assert max(a.took for a in attempts) < 7, sorted(a.took for a in attempts)[-5:]
    took = sorted(a.took for a in refused)
    assert took[len(took) // 2] < 2, took  # most refusals come within about a second
    assert all(down - 1 < a.started < up + 3 for a in refused)
    log = server.log()
    assert "lost the connection to PostgreSQL" in log
    # Said, not shouted: the refused requests and the pool's reconnection attempts are
    # throttled to one line per 10 s each (the outage lasts 5 s, so two at most).
    answered_503 = log.count("; API requests are answered 503")
    assert 1 <= answered_503 <= 2, answered_503
    assert log.count("WARNING psycopg.pool: error connecting") <= 2

    deliveries.wait_until(lambda: set(accepted) <= set(deliveries.counts()), 30,
                          "every accepted job delivered after the outage")
    unexpected = set(deliveries.counts()) - set(accepted)
    assert not unexpected, unexpected  # a refused enqueue stored nothing
