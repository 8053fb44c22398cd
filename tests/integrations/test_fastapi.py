"""What the FastAPI integration adds: FastAPI's body handling and schema stay out of the way."""

from __future__ import annotations

import importlib
import sys

import pytest
from pydantic import BaseModel

from taskless.core.errors import MissingExtra
from taskless.integrations import starlette as starlette_integration

from .conftest import NOW, SETTINGS, AsgiHarness
from .test_receiver_contract import post

fastapi = pytest.importorskip("fastapi")
FastAPI = fastapi.FastAPI
Taskless = pytest.importorskip("taskless.integrations.fastapi").Taskless


class Signup(BaseModel):
    email: str


def test_is_the_starlette_integration() -> None:
    assert issubclass(Taskless, starlette_integration.Taskless)


def test_receiver_route_is_not_in_the_openapi_schema() -> None:
    app = FastAPI()

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"email": body.email}

    taskless = Taskless(app, settings=SETTINGS, clock=lambda: NOW)
    taskless.queue("emails")(lambda payload: None)
    paths = app.openapi()["paths"]
    assert "/signup" in paths
    assert not any(path.startswith("/api/queues") for path in paths)


def test_fastapi_endpoints_and_receiver_side_by_side() -> None:
    app = FastAPI()
    seen: list[Signup] = []

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"email": body.email}

    taskless = Taskless(app, settings=SETTINGS, clock=lambda: NOW)

    @taskless.queue("welcome")
    async def welcome(payload: Signup) -> str:
        seen.append(payload)
        return payload.email

    harness = AsgiHarness(app, taskless)
    reply = harness.request(
        "POST", "/signup", headers={"content-type": "application/json"}, body=b'{"email":"a@b"}'
    )
    assert reply.json() == {"email": "a@b"}
    assert post(harness, "welcome", {"email": "c@d"}).json() == {"ok": True, "result": "c@d"}
    assert seen == [Signup(email="c@d")]
    # FastAPI's own validation answers its routes; the receiver's answers deliveries.
    assert post(harness, "welcome", {"email": 1}).json()["error"]["field"] == "payload.email"


def test_init_app_later() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)
    taskless.queue("emails")(lambda payload: "late")
    app = FastAPI()
    taskless.init_app(app)
    assert post(AsgiHarness(app, taskless), "emails").json()["result"] == "late"


def test_max_body_bytes_is_passed_on_and_the_openapi_schema_stays_clean() -> None:
    app = FastAPI()
    taskless = Taskless(app, settings=SETTINGS, clock=lambda: NOW, max_body_bytes=1000)
    taskless.queue("emails")(lambda payload: None)
    assert taskless.receiver.max_body_bytes == 1000
    reply = post(AsgiHarness(app, taskless), "emails", {"pad": "x" * 1000})
    assert (reply.status, reply.json()["error"]["code"]) == (413, "too_large")
    assert not any(path.startswith("/api/queues") for path in app.openapi()["paths"])


def test_missing_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # makes "import fastapi" fail
    monkeypatch.delitem(sys.modules, "taskless.integrations.fastapi")
    with pytest.raises(MissingExtra) as info:
        importlib.import_module("taskless.integrations.fastapi")
    assert "pip install 'taskless[fastapi]'" in str(info.value)
    assert isinstance(info.value, ImportError)
