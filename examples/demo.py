"""The main job, end to end: a real job server delivers real jobs to a real FastAPI app.

    python3 tasks.py demo

Starts ``taskless dev`` (SQLite in a temporary folder) and the app of ``examples/fastapi_app.py``
under uvicorn, each on a free loopback port; enqueues a one-off job, a job due a few seconds
ahead, a job that recurs every 2 s and a job whose handler fails twice before it succeeds; prints
each delivery as it arrives, and after about 15 s a summary. Exits 0 when every job was
delivered as promised, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DURATION = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_job_server(port: int, workdir: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLESS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "taskless", "dev", "--port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            sys.exit(f"the job server did not start:\n{err}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    sys.exit("the job server did not answer on /healthz within 20 s")


async def serve_app(app_port: int) -> uvicorn.Server:
    from examples.fastapi_app import app

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=app_port, log_level="warning")
    )
    asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server


class OneLine(logging.Formatter):
    """Handler failures are expected in the demo: log their message, not their traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return f"  {time.strftime('%H:%M:%S')}  (app log) {record.getMessage()}"

    def formatException(self, ei: Any) -> str:
        return ""


def quiet_handler_tracebacks() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(OneLine())
    receiver_log = logging.getLogger("taskless.receiver")
    receiver_log.addHandler(handler)
    receiver_log.propagate = False


async def main() -> int:
    quiet_handler_tracebacks()
    job_port, app_port = free_port(), free_port()
    os.environ["TASKLESS_URL"] = f"http://127.0.0.1:{job_port}"
    os.environ["TASKLESS_BASE_URL"] = f"http://127.0.0.1:{app_port}"
    with tempfile.TemporaryDirectory(prefix="taskless-demo-") as workdir:
        job_server = start_job_server(job_port, workdir)
        try:
            return await run_demo(job_port, app_port)
        finally:
            job_server.send_signal(signal.SIGINT)
            try:
                job_server.wait(5)
            except subprocess.TimeoutExpired:
                job_server.kill()


async def run_demo(job_port: int, app_port: int) -> int:
    from examples import fastapi_app as example

    server = await serve_app(app_port)
    print(f"job server  http://127.0.0.1:{job_port}   (taskless dev, SQLite)")
    print(f"FastAPI app http://127.0.0.1:{app_port}   (uvicorn; receiver at /api/queues/<queue>)")
    print("\nenqueueing (deliveries print as they arrive, from now on):")
    now = datetime.now(UTC)
    soon = (now + timedelta(seconds=4)).isoformat(timespec="seconds")
    plans = [
        (example.send_email, "welcome-42",
         example.Email(to="ada@example.com", subject="Welcome!"), None,
         "one-off, as soon as possible"),
        (example.send_email, "reminder-42",
         example.Email(to="ada@example.com", subject="Your trial ends soon"), {"runAt": soon},
         f"one-off at {soon}"),
        (example.build_report, "heartbeat", {"kind": "heartbeat"},
         {"runAt": now.isoformat(), "runEvery": "PT2S"}, "every 2 s from now"),
        (example.call_partner, "sync-crm", {"failures": 2}, {"retries": 3},
         "fails twice, then succeeds (retries=3)"),
    ]
    for handler, name, payload, options, what in plans:
        job = await handler.enqueue(name, payload, options)
        print(f"  {handler.name + '/' + name:<20} {what:<40} state={job.state.value}")
    print(f"\nwatching deliveries for {DURATION:.0f} s")
    await asyncio.sleep(DURATION)
    await example.build_report.delete("heartbeat")
    server.should_exit = True
    await asyncio.sleep(0.2)
    return summarize(example.deliveries)


def summarize(deliveries: list[tuple[str, str, int, float]]) -> int:
    per_job = Counter(f"{q}/{n}" for q, n, _, _ in deliveries)
    late_ms = sorted(lateness * 1000 for *_, lateness in deliveries)
    print("\nsummary:")
    for job, count in sorted(per_job.items()):
        print(f"  {job:<22} {count} deliveries")
    if late_ms:
        print(f"  lateness: median {late_ms[len(late_ms) // 2]:.1f} ms, max {late_ms[-1]:.1f} ms"
              " (retries count from their occurrence's time)")
    flaky_attempts = [a for q, n, a, _ in deliveries if q == "flaky"]
    problems = []
    if per_job["emails/welcome-42"] != 1:
        problems.append("welcome-42 should be delivered exactly once")
    if per_job["emails/reminder-42"] != 1:
        problems.append("reminder-42 should be delivered exactly once")
    if not 6 <= per_job["reports/heartbeat"] <= 9:
        problems.append("heartbeat should run about every 2 s")
    if flaky_attempts != [1, 2, 3]:
        problems.append(f"sync-crm should be attempted 1, 2, 3 (got {flaky_attempts})")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    print("  all jobs delivered as promised" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
