"""Receive Taskless jobs in a FastAPI app, and enqueue them from it.

::

    from fastapi import FastAPI
    from taskless import JobMeta
    from taskless.integrations.fastapi import Taskless

    app = FastAPI()
    taskless = Taskless(app)

    @taskless.queue("emails")
    async def send_email(payload: Email, meta: JobMeta) -> None:
        ...

    @app.post("/signup")
    async def signup(email: Email) -> None:
        await send_email.enqueue(f"welcome:{email.to}", email)

A FastAPI app is a Starlette app, so this is the Starlette integration
(:mod:`taskless.integrations.starlette`) under FastAPI's name. The receiver route is a plain
Starlette route, not a FastAPI path operation: FastAPI never parses or validates the body
(the signature is over its raw bytes), and the route is left out of the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Callable

from taskless.core.errors import MissingExtra

try:
    from fastapi import FastAPI
except ImportError:
    raise MissingExtra("fastapi", "fastapi") from None

from taskless.core.receiver import DEFAULT_MAX_BODY_BYTES, DEFAULT_PREFIX
from taskless.core.settings import Settings
from taskless.integrations.starlette import QueueHandler
from taskless.integrations.starlette import Taskless as _StarletteTaskless

__all__ = ["QueueHandler", "Taskless"]


class Taskless(_StarletteTaskless):
    """Taskless for a FastAPI app; see :class:`taskless.integrations.starlette.Taskless`.

    ``Taskless(app)`` mounts the receiver route ``<prefix>/{queue}`` on ``app`` (or call
    :meth:`init_app` later); ``@taskless.queue("name")`` declares a queue and its handler.
    """

    def __init__(
        self,
        app: FastAPI | None = None,
        *,
        settings: Settings | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(
            app, settings=settings, prefix=prefix, clock=clock, max_body_bytes=max_body_bytes
        )
