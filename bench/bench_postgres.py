"""The delivery benchmark on PostgreSQL, durable settings, nothing to set up.

    .venv/bin/python bench/bench_postgres.py [-n 5000] [--servers 2] [--batch-enqueue]

Starts a throwaway PostgreSQL cluster (``tests/pgcluster.py``: a temporary directory, a free
loopback port, ``fsync=on``, ``synchronous_commit=on``, ``full_page_writes=on``), then runs
``bench_delivery.py`` against it: throughput of N jobs due at one instant, lateness, and the
bare POST loop for reference. ``--servers 2`` runs a second job server process on the same
database (the jobs are enqueued through the first; both deliver). ``--batch-enqueue`` enqueues
through ``jobs:batch`` so that, on a busy machine, enqueueing never runs into the measured
window. To benchmark a PostgreSQL
server of your own instead: ``python3 tasks.py bench --database postgresql://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import bench_delivery
from pgcluster import PostgresCluster

DURABILITY = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")


class PostgresBench(bench_delivery.Bench):
    """The benchmark with ``args.servers - 1`` more job server processes on the database, and
    (with ``--batch-enqueue``) jobs enqueued 1,000 per request."""

    def __init__(self, args: argparse.Namespace, workdir: str) -> None:
        super().__init__(args, workdir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLESS_")}
        self.extra: list[subprocess.Popen[bytes]] = []
        for _ in range(args.servers - 1):
            port = bench_delivery.free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "taskless", "dev", "--port", str(port),
                 "--database", args.database],
                cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.extra.append(process)
            bench_delivery.wait_http(f"http://127.0.0.1:{port}/healthz", process, "job server")

    async def enqueue(self, client: httpx.AsyncClient, jobs: list[tuple[str, str]]) -> float:
        if not self.args.batch_enqueue:
            return await super().enqueue(client, jobs)
        started = time.perf_counter()
        for i in range(0, len(jobs), 1000):
            body = {"jobs": [
                {"name": name, "payload": {"n": name}, "endpoint": self.endpoint,
                 "options": {"runAt": run_at, "retries": 0}}
                for name, run_at in jobs[i:i + 1000]
            ]}
            r = await client.post("/v1/queues/bench/jobs:batch", json=body)
            failed = [x for x in r.json().get("results", []) if x.get("status") not in (200, 201)]
            if r.status_code != 200 or failed:
                raise RuntimeError(f"enqueue failed: {r.status_code} {failed[:1] or r.text}")
        return time.perf_counter() - started

    def close(self) -> None:
        for process in self.extra:
            process.terminate()
        for process in self.extra:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        super().close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="jobs in the throughput run")
    parser.add_argument("--lateness-jobs", type=int, default=500)
    parser.add_argument("--bare", type=int, default=5000, help="requests in the bare POST loop")
    parser.add_argument("--servers", type=int, default=1, help="job server processes (1 or more)")
    parser.add_argument(
        "--batch-enqueue", action="store_true",
        help="enqueue through jobs:batch (1,000 per request) instead of one PUT per job, so "
        "that a slow enqueue never overlaps the throughput window",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    with PostgresCluster() as cluster:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE taskless")
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in DURABILITY
            }
        args.database = cluster.url.rsplit("/", 1)[0] + "/taskless"
        print("PostgreSQL", ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
        if args.servers > 1:
            print(f"{args.servers} job server processes on one database", flush=True)
        result: dict[str, Any] = asyncio.run(bench_delivery.run(args, PostgresBench))
    result["postgres"] = settings
    result["servers"] = args.servers
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
