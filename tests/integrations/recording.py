"""A transport that answers the job server API with canned jobs and remembers the requests, for
the tests of each integration's queue methods (sync and async alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskless.core.hooks import hookimpl, registered
from taskless.core.transport import ApiRequest, ApiResponse, AsyncTransport, Transport

#: The requests of: enqueue "welcome", get "welcome", get "missing", update "welcome",
#: update "missing" (not found), delete "missing".
WELCOME_THEN_MISSING = [
    ("PUT", "/v1/queues/emails/jobs/welcome"),
    ("GET", "/v1/queues/emails/jobs/welcome"),
    ("GET", "/v1/queues/emails/jobs/missing"),
    ("PATCH", "/v1/queues/emails/jobs/welcome"),
    ("PATCH", "/v1/queues/emails/jobs/missing"),
    ("DELETE", "/v1/queues/emails/jobs/missing"),
]


class RecordingTransport(Transport, AsyncTransport):
    """Answers the job server API with canned jobs; remembers the requests. The job
    ``missing`` is never found."""

    def __init__(self) -> None:
        self.requests: list[ApiRequest] = []

    def handle(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        name = request.path.rsplit("/", 1)[-1]
        if name == "missing":
            return ApiResponse(404, {"error": {"code": "not_found", "message": "no such job"}})
        body = request.json or {}
        job = {
            "id": "job_1", "queue": "emails", "name": name,
            "endpoint": body.get("endpoint", "https://app.example.com/api/queues/emails"),
            "options": body.get("options", {}), "state": "scheduled",
            "createdAt": "2024-03-01T09:30:00Z", "updatedAt": "2024-03-01T09:30:00Z",
        }
        if "encrypted" in body:  # stored as sent, as the job server does
            job["encrypted"] = body["encrypted"]
        else:
            job["payload"] = body.get("payload", {"to": "stored@example.com"})
        return ApiResponse(200, job)

    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        return self.handle(request)


@contextmanager
def recording_transport() -> Iterator[RecordingTransport]:
    """A :class:`RecordingTransport` serving ``TASKLESS_URL=recording://...`` in the block."""
    transport = RecordingTransport()

    class Plugin:
        @hookimpl
        def taskless_transports(self) -> dict[str, Any]:
            return {"recording": lambda url, settings, *, asynchronous: transport}

    with registered(Plugin()):
        yield transport
