"""A FastAPI app whose background and scheduled jobs Taskless delivers.

Run it next to a development job server::

    taskless dev                                   # terminal 1: the job server on :3001
    uvicorn examples.fastapi_app:app --port 8000    # terminal 2: this app

then ``curl -X POST localhost:8000/signup -H 'content-type: application/json' \
-d '{"email": "ada@example.com"}'`` and watch the welcome email arrive a moment later.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import BaseModel

from taskless import JobMeta
from taskless.integrations.fastapi import Taskless

app = FastAPI(title="Taskless example")
taskless = Taskless(app)

#: Every delivery this app received, for the demo's summary: (queue, job, attempt, lateness s).
deliveries: list[tuple[str, str, int, float]] = []


def record(meta: JobMeta, note: str = "") -> None:
    lateness = (datetime.now(UTC) - meta.scheduled_at).total_seconds()
    deliveries.append((meta.queue, meta.name, meta.attempt, lateness))
    print(
        f"  {time.strftime('%H:%M:%S')}  {meta.queue + '/' + meta.name:<20} attempt {meta.attempt}"
        f"  {lateness * 1000:7.1f} ms after its time  {note}",
        flush=True,
    )


class Email(BaseModel):
    to: str
    subject: str


@taskless.queue("emails")
async def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
    record(meta, f"-> email to {payload.to}: {payload.subject!r}")
    return {"sent": payload.to}


@taskless.queue("reports")
async def build_report(payload: dict[str, str], meta: JobMeta) -> None:
    record(meta, f"-> {payload['kind']} report")


#: How many times each flaky job has been tried so far.
_flaky_attempts: dict[str, int] = {}


@taskless.queue("flaky")
def call_partner(payload: dict[str, int], meta: JobMeta) -> dict[str, int]:
    """A sync handler for an unreliable partner API: fails ``payload['failures']`` times."""
    tries = _flaky_attempts[meta.run_id] = _flaky_attempts.get(meta.run_id, 0) + 1
    if tries <= payload["failures"]:
        record(meta, "-> partner API down, raising (the job server will retry)")
        raise ConnectionError("partner API unavailable")
    record(meta, "-> partner API answered")
    return {"tries": tries}


class Signup(BaseModel):
    email: str


@app.post("/signup")
async def signup(body: Signup) -> dict[str, str]:
    """Enqueue a welcome email for a new user; the request returns at once."""
    job = await send_email.enqueue(
        f"welcome-{random.randrange(10**6)}", Email(to=body.email, subject="Welcome!")
    )
    return {"job": job.name, "state": job.state.value}
