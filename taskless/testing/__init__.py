"""Test code that uses Taskless in milliseconds: no job server, no network, no sleeping.

:class:`TasklessFake` is an in-memory job server with a virtual clock. It serves the job
server's API with the job server's own code (schedules, retries, recurrence) and delivers the
job server's signed requests to your app in-process::

    from taskless.testing import TasklessFake

    fake = TasklessFake(app)              # FastAPI/Starlette, Flask, or a Lambda handler
    emails = fake.queue("emails")         # or TASKLESS_URL=memory:// and fake.install()
    emails.enqueue("welcome", {"to": "ada@example.com"}, {"retries": 3})
    fake.run_due()                        # deliver what is due now
    fake.advance("P1D")                   # move a day on, delivering what falls due
    fake.assert_delivered("welcome", attempts=[1])

With pytest, the ``taskless_fake`` fixture gives each test a fresh fake serving
``memory://`` (see :mod:`taskless.testing.pytest_plugin`). This package never imports pytest.
"""

from __future__ import annotations

from .clock import VirtualClock
from .fake import ANY, ApiCall, Delivery, Enqueued, Scheduled, TasklessFake
from .memory import MemoryTransport, active_fake
from .targets import (
    AsgiTarget,
    DeliveryRequest,
    DeliveryResponse,
    DirectTarget,
    LambdaTarget,
    Target,
    WsgiTarget,
    target_for,
)

__all__ = [
    "ANY",
    "ApiCall",
    "AsgiTarget",
    "Delivery",
    "DeliveryRequest",
    "DeliveryResponse",
    "DirectTarget",
    "Enqueued",
    "LambdaTarget",
    "MemoryTransport",
    "Scheduled",
    "Target",
    "TasklessFake",
    "VirtualClock",
    "WsgiTarget",
    "active_fake",
    "target_for",
]
