"""A Flask app whose background and scheduled jobs Taskless delivers.

Run it next to a development job server::

    taskless dev                                          # terminal 1: the job server on :3001
    flask --app examples.flask_app run --port 8000 --with-threads   # terminal 2: this app

then ``curl -X POST localhost:8000/signup -H 'content-type: application/json' \
-d '{"email": "ada@example.com"}'`` and watch the welcome email arrive a moment later, and the
follow-up a minute after that.

Settings come from ``app.config["TASKLESS_..."]``, else from ``TASKLESS_*`` environment variables;
in development the defaults match ``taskless dev`` (the app at ``http://127.0.0.1:8000``).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, request
from pydantic import BaseModel

from taskless import JobMeta, RetryLater
from taskless.integrations.flask import Taskless

taskless = Taskless()


class Email(BaseModel):
    to: str
    subject: str


@taskless.queue("emails", options={"retries": 3})
def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
    """Deliveries arrive here as signed POSTs to /api/queues/emails."""
    print(
        f"{time.strftime('%H:%M:%S')}  email to {payload.to}: {payload.subject!r} "
        f"(job {meta.name}, attempt {meta.attempt})",
        flush=True,
    )
    return {"sent": payload.to}


@taskless.queue("reports")
async def build_report(payload: dict[str, Any], meta: JobMeta) -> None:
    """Async handlers work too: each runs to completion inside its request."""
    if payload.get("wait_for_data") and meta.attempt == 1:
        raise RetryLater(5)  # answered 503 with Retry-After: 5; the job server comes back then
    print(f"{time.strftime('%H:%M:%S')}  {payload['kind']} report, attempt {meta.attempt}")


def create_app() -> Flask:
    """The app factory: ``Taskless()`` above, ``init_app`` here."""
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_TASKLESS_BASE_URL=... sets TASKLESS_BASE_URL, say
    taskless.init_app(app)

    @app.post("/signup")
    def signup() -> dict[str, str]:
        """Enqueue a welcome email now and a follow-up in a minute; return at once."""
        email = request.get_json()["email"]
        job = send_email.enqueue(f"welcome:{email}", Email(to=email, subject="Welcome!"))
        send_email.enqueue(
            f"follow-up:{email}",
            Email(to=email, subject="How is it going?"),
            {"run_at": datetime.now(UTC) + timedelta(minutes=1)},
        )
        return {"job": job.name, "state": job.state.value}

    @app.post("/reports/daily")
    def daily_report() -> dict[str, str]:
        """A recurring job: every day at 07:00 in Zurich, whatever the DST."""
        job = build_report.enqueue(
            "daily",
            {"kind": "daily"},
            {"run_at": "2025-01-01T07:00:00+01:00", "run_every": "P1D",
             "timezone": "Europe/Zurich"},
        )
        return {"job": job.name, "next_run_at": str(job.next_run_at)}

    @app.post("/reports/once")
    def one_off_report() -> dict[str, str]:
        job = build_report.enqueue(None, {"kind": f"ad-hoc {uuid.uuid4().hex[:6]}"})
        return {"job": job.name}

    return app


app = create_app()
