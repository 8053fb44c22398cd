"""Fault tests: real ``taskless dev`` server processes (killed, several at once) delivering to a
real receiver app, over SQLite or PostgreSQL.

* :class:`ServerProcess` runs ``python -m taskless dev`` on a free loopback port with short
  timeouts and leases, its output in a log file; ``kill()`` is ``kill -9``.
* the ``deliveries`` fixture is a Starlette app served by uvicorn in a thread of the test
  process (so it outlives the servers), recording every delivery it receives. A job whose
  name starts with ``slow`` hangs for 60 s on its first attempt.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskless.core.settings import DEV_SIGNING_SECRET
from taskless.core.signing import Verifier
from taskless.server.runner import ServerThread

READY = "listening on "
#: Seconds an attempt may take, and how long a claim stays reserved, in these tests.
TIMEOUT = 3.0
LEASE = 5.0


@dataclass(frozen=True)
class Delivery:
    job: str
    attempt: int
    webhook_id: str
    scheduled_at: str
    at: float  # time.monotonic() on arrival


@dataclass
class Deliveries:
    """What the receiver app got; thread-safe."""

    url: str = ""
    items: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/jobs"

    def add(self, delivery: Delivery) -> None:
        with self.lock:
            self.items.append(delivery)

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.items)

    def of(self, job: str) -> list[Delivery]:
        return [d for d in self.snapshot() if d.job == job]

    def counts(self) -> Counter[str]:
        return Counter(d.job for d in self.snapshot())

    def wait_until(self, check: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"within {timeout} s: {what} (got {self.counts()})")
            time.sleep(0.05)


def receiver_app(deliveries: Deliveries) -> Starlette:
    verifier = Verifier([DEV_SIGNING_SECRET])

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        verifier.verify(dict(request.headers), body)  # only signed deliveries count
        envelope = json.loads(body)
        delivery = Delivery(
            job=envelope["job"],
            attempt=envelope["attempt"],
            webhook_id=request.headers["webhook-id"],
            scheduled_at=envelope["scheduledAt"],
            at=time.monotonic(),
        )
        deliveries.add(delivery)
        if delivery.job.startswith("slow") and delivery.attempt == 1:
            await asyncio.sleep(60)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/jobs", endpoint, methods=["POST"])])


@pytest.fixture
def deliveries() -> Iterator[Deliveries]:
    recorded = Deliveries()
    with ServerThread(receiver_app(recorded), timeout_graceful_shutdown=1) as server:
        recorded.url = server.url
        yield recorded


class ServerProcess:
    """``python -m taskless dev`` in a process of its own."""

    def __init__(self, database: str, workdir: Path, name: str = "server") -> None:
        self.database = database
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLESS_")}
        log = self.log_path.open("ab")
        log.write(f"--- start {self.starts}\n".encode())
        log.flush()
        offset = log.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskless", "dev", "--port", "0",
             "--database", self.database, "--timeout", str(TIMEOUT), "--lease", str(LEASE),
             "--backoff-base", "0.2", "--backoff-cap", "1", "--log-level", "debug"],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            if READY in text:
                self.url = text.split(READY, 1)[1].split()[0]
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the job server did not start:\n{text[-3000:]}")
            time.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9``: no shutdown of any kind."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Servers a test starts (``servers.append(ServerProcess(...).start())``); all stopped at
    the end."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()
