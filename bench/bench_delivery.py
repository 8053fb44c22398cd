"""Delivery benchmark: how fast and how punctually the job server delivers.

    python3 tasks.py bench [-n 5000] [--lateness-jobs 500] [--database URL]

Starts a job server (``taskless dev`` on SQLite in a temporary folder, or ``--database`` for
PostgreSQL) and the FastAPI receiver of ``bench/receiver_app.py`` under uvicorn, each in its own
process on a loopback port, then measures:

1. throughput: N jobs all due at one instant; delivered jobs/s from that instant to the last
   delivery, and CPU ms per job of the server and of the receiver over that window;
2. lateness: jobs scheduled 2-4 s ahead; p50/p99 of (arrival - scheduled time);
3. the physical limit: a bare loop of signed POSTs, 16 in flight, to the same receiver with
   aiohttp, and the same with ``httpx.AsyncClient`` for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from taskless.core.envelope import build_envelope
from taskless.core.settings import DEV_API_KEY, DEV_SIGNING_SECRET
from taskless.core.signing import signed_headers

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: str) -> None:
        self.args = args
        self.server_port, self.app_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.server_port}"
        self.app = f"http://127.0.0.1:{self.app_port}"
        self.endpoint = f"{self.app}/api/queues/bench"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLESS_")}
        server_cmd = [sys.executable, "-m", "taskless", "dev", "--port", str(self.server_port)]
        if args.database:
            server_cmd += ["--database", args.database]
        self.server = subprocess.Popen(server_cmd, cwd=workdir, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.receiver = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.receiver_app:app", "--port",
             str(self.app_port), "--log-level", "warning", "--no-access-log", "--loop", "uvloop"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_http(f"{self.api}/healthz", self.server, "job server")
        wait_http(f"{self.app}/stats", self.receiver, "receiver")

    def close(self) -> None:
        for process in (self.server, self.receiver):
            process.terminate()
        for process in (self.server, self.receiver):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    async def enqueue(self, client: httpx.AsyncClient, jobs: list[tuple[str, str]]) -> float:
        """PUT every (name, runAt), 32 in flight; returns the seconds it took."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                name, run_at = queue.get_nowait()
                r = await client.put(
                    f"/v1/queues/bench/jobs/{name}",
                    json={"payload": {"n": name}, "endpoint": self.endpoint,
                          "options": {"runAt": run_at, "retries": 0}},
                )
                if r.status_code not in (200, 201):
                    raise RuntimeError(f"enqueue failed: {r.status_code} {r.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(32)))
        return time.perf_counter() - started

    async def stats(self, client: httpx.AsyncClient) -> dict[str, Any]:
        return (await client.get(f"{self.app}/stats")).json()  # type: ignore[no-any-return]

    async def wait_for(self, client: httpx.AsyncClient, count: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats(client)
            if stats["count"] >= count or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.1)

    async def throughput(self, client: httpx.AsyncClient) -> dict[str, float]:
        n = self.args.n
        await client.post(f"{self.app}/reset")
        margin = 3.0 + n / 400
        due = datetime.now(UTC) + timedelta(seconds=margin)
        took = await self.enqueue(client, [(f"t{i}", due.isoformat()) for i in range(n)])
        if took > margin:
            print(f"  warning: enqueueing took {took:.1f} s, past the due instant", flush=True)
        await asyncio.sleep(max(0.0, due.timestamp() - time.time() - 0.2))
        cpu_server, cpu_receiver = cpu_seconds(self.server.pid), cpu_seconds(self.receiver.pid)
        stats = await self.wait_for(client, n, timeout=120)
        cpu_server = cpu_seconds(self.server.pid) - cpu_server
        cpu_receiver = cpu_seconds(self.receiver.pid) - cpu_receiver
        window = stats["last"] - due.timestamp()
        return {
            "jobs": stats["count"], "enqueue_per_s": n / took,
            "delivered_per_s": stats["count"] / window if window > 0 else float("nan"),
            "server_cpu_ms_per_job": 1000 * cpu_server / max(1, stats["count"]),
            "receiver_cpu_ms_per_job": 1000 * cpu_receiver / max(1, stats["count"]),
        }

    async def lateness(self, client: httpx.AsyncClient) -> dict[str, float]:
        n = self.args.lateness_jobs
        await client.post(f"{self.app}/reset")
        base = datetime.now(UTC) + timedelta(seconds=2)
        jobs = [(f"l{i}", (base + timedelta(seconds=random.uniform(0, 2))).isoformat())
                for i in range(n)]
        await self.enqueue(client, jobs)
        stats = await self.wait_for(client, n, timeout=60)
        late_ms = [1000 * x for x in stats["lateness"]]
        return {"jobs": stats["count"], "p50_ms": percentile(late_ms, 0.5),
                "p99_ms": percentile(late_ms, 0.99), "max_ms": max(late_ms)}

    def signed_request(self, i: int) -> tuple[bytes, dict[str, str]]:
        body = build_envelope("bench", f"bare{i}", 1, datetime.now(UTC), {"n": i})
        headers = signed_headers(body, DEV_SIGNING_SECRET, msg_id=f"run_bare{i}")
        return body, {**headers, "content-type": "application/json"}

    async def bare_aiohttp(self, count: int) -> float:
        requests = [self.signed_request(i) for i in range(count)]
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def worker(items: list[tuple[bytes, dict[str, str]]]) -> None:
                for body, headers in items:
                    async with session.post(self.endpoint, data=body, headers=headers) as r:
                        await r.read()
                        assert r.status == 200, r.status

            started = time.perf_counter()
            await asyncio.gather(*(worker(requests[k::16]) for k in range(16)))
            return count / (time.perf_counter() - started)

    async def bare_httpx(self, count: int) -> float:
        requests = [self.signed_request(i) for i in range(count)]
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(limits=limits) as client:
            async def worker(items: list[tuple[bytes, dict[str, str]]]) -> None:
                for body, headers in items:
                    r = await client.post(self.endpoint, content=body, headers=headers)
                    assert r.status_code == 200, r.status_code

            started = time.perf_counter()
            await asyncio.gather(*(worker(requests[k::16]) for k in range(16)))
            return count / (time.perf_counter() - started)


async def run(args: argparse.Namespace, bench_class: type[Bench] = Bench) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="taskless-bench-") as workdir:
        bench = bench_class(args, workdir)
        try:
            headers = {"authorization": f"Bearer {DEV_API_KEY}"}
            async with httpx.AsyncClient(base_url=bench.api, headers=headers, timeout=30) as c:
                print(f"database: {args.database or 'SQLite (taskless dev)'}", flush=True)
                bare = await bench.bare_aiohttp(args.bare)
                print(f"bare POST loop, aiohttp, 16 in flight: {bare:8.0f} req/s", flush=True)
                bare_httpx = await bench.bare_httpx(min(args.bare, 2000))
                print(f"bare POST loop, httpx,   16 in flight: {bare_httpx:8.0f} req/s", flush=True)
                t = await bench.throughput(c)
                print(f"throughput: {t['jobs']} jobs, {t['delivered_per_s']:.0f} delivered/s "
                      f"({100 * t['delivered_per_s'] / bare:.0f}% of the bare POST rate); "
                      f"CPU per job: server {t['server_cpu_ms_per_job']:.2f} ms, "
                      f"receiver {t['receiver_cpu_ms_per_job']:.2f} ms; "
                      f"enqueue {t['enqueue_per_s']:.0f}/s", flush=True)
                late = await bench.lateness(c)
                print(f"lateness of {late['jobs']} jobs due 2-4 s ahead: p50 {late['p50_ms']:.1f} ms, "
                      f"p99 {late['p99_ms']:.1f} ms, max {late['max_ms']:.1f} ms", flush=True)
                return {"bare_aiohttp_per_s": bare, "bare_httpx_per_s": bare_httpx,
                        "throughput": t, "lateness": late}
        finally:
            bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="jobs in the throughput run")
    parser.add_argument("--lateness-jobs", type=int, default=500)
    parser.add_argument("--bare", type=int, default=5000, help="requests in the bare POST loop")
    parser.add_argument("--database", help="database URL for the job server (default SQLite)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
