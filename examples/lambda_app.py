"""An AWS Lambda function that receives Taskless jobs, and enqueues some.

Deploy it behind any HTTP front of Lambda (a Function URL, API Gateway REST or HTTP API, or an
Application Load Balancer; the entry point recognises each from its event) with the handler
``examples.lambda_app.handler`` and these environment variables:

    TASKLESS_ENV=production
    TASKLESS_SIGNING_SECRET=whsec_...        # the job server's signing secret
    TASKLESS_API_KEY=...                     # to enqueue
    TASKLESS_URL=https://jobs.example.com    # the job server
    TASKLESS_BASE_URL=https://<url-id>.lambda-url.<region>.on.aws   # this function's URL

Run it on your machine, behind a local HTTP front that plays the AWS service::

    taskless dev                                                         # the job server
    python -m taskless.testing.lambda_local examples.lambda_app:handler \
        --source function-url --port 8000                                # this function

With the development defaults, jobs enqueued for ``http://127.0.0.1:8000`` reach it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from taskless import JobMeta
from taskless.integrations.aws_lambda import Taskless

taskless = Taskless()


class Email(BaseModel):
    to: str
    subject: str


@taskless.queue("emails", options={"retries": 3})
def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
    """Deliveries arrive as signed POSTs to /api/queues/emails."""
    print(f"email to {payload.to}: {payload.subject!r} (run {meta.run_id}, attempt {meta.attempt})")
    if payload.subject == "Welcome!":
        # Enqueue from handler code with the sync queue methods.
        send_email.enqueue(
            f"tips:{payload.to}",
            Email(to=payload.to, subject="Three tips to get started"),
            {"run_at": datetime.now(UTC) + timedelta(days=1)},
        )
    return {"sent": payload.to}


@taskless.queue("cleanup")
async def clean_up(payload: dict[str, Any], meta: JobMeta) -> int:
    """An async handler: it runs to completion inside the invocation."""
    print(f"cleaning up {payload.get('table', 'sessions')} (job {meta.name})")
    return 0


#: The function's entry point.
handler = taskless.handler
