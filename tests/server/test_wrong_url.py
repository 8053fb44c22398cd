"""A job server URL with a wrong path is an error, never a silent "no such job"."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from taskless import Queue, ServerError
from taskless.core.settings import Settings
from taskless.server.app import create_app
from taskless.server.runner import ServerThread


def test_unknown_route_is_no_route_and_queue_methods_raise(tmp_path: Path) -> None:
    settings = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with ServerThread(create_app(settings, dispatcher=False)) as server:
        response = httpx.get(
            f"{server.url}/v1/nothing", headers={"authorization": f"Bearer {settings.api_key}"}
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "no_route"
        wrong = Queue("emails", url=f"{server.url}/extra", settings=settings,
                      endpoint="http://127.0.0.1:9/api/queues/emails")
        with wrong:
            for call in (lambda: wrong.get("a"), lambda: wrong.delete("a"),
                         lambda: wrong.update("a", options={"retries": 1})):
                with pytest.raises(ServerError) as caught:
                    call()
                assert caught.value.status == 404
                assert caught.value.error_code == "no_route"
