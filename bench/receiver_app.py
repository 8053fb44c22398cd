"""The benchmark's receiver: a FastAPI app with one Taskless queue that records every delivery.

Served by ``bench_delivery.py`` under uvicorn in its own process. ``GET /stats`` returns what
arrived; ``POST /reset`` forgets it.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI

from taskless import JobMeta
from taskless.integrations.fastapi import Taskless

app = FastAPI()
taskless = Taskless(app)

arrivals: list[float] = []
lateness: list[float] = []


@taskless.queue("bench")
async def bench(payload: Any, meta: JobMeta) -> None:
    now = time.time()
    arrivals.append(now)
    lateness.append(now - meta.scheduled_at.timestamp())


@app.get("/stats")
async def stats() -> dict[str, Any]:
    return {
        "count": len(arrivals),
        "first": min(arrivals, default=None),
        "last": max(arrivals, default=None),
        "lateness": lateness,
    }


@app.post("/reset")
async def reset() -> dict[str, bool]:
    arrivals.clear()
    lateness.clear()
    return {"ok": True}
