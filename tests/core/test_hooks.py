"""The taskless pluggy hooks: specs, the plugin manager, entry points, observers."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import types
from importlib.metadata import EntryPoint
from typing import Any

import pluggy
import pytest

from taskless.core import hooks
from taskless.core.errors import ConfigurationError, ServerError
from taskless.core.hooks import (
    TasklessHookspecs,
    build_plugin_manager,
    hookimpl,
    notify,
    plugin_manager,
    register,
    registered,
    unregister,
)
from taskless.core.models import Job
from taskless.core.queue import AsyncQueue, Queue
from taskless.core.settings import Settings
from taskless.core.transport import ApiRequest, ApiResponse, AsyncTransport, Transport

SETTINGS = Settings(base_url="http://app.test")

JOB = {
    "id": "job_1",
    "queue": "emails",
    "name": "welcome",
    "endpoint": "http://app.test/api/queues/emails",
    "payload": {"to": "ada@example.com"},
    "options": {"enabled": True, "headers": {}, "retries": 5},
    "state": "scheduled",
    "nextRunAt": None,
    "createdAt": "2024-12-31T12:00:00Z",
    "updatedAt": "2024-12-31T12:00:00Z",
}


class Canned(Transport, AsyncTransport):
    def __init__(self, response: ApiResponse) -> None:
        self.response = response

    def handle(self, request: ApiRequest) -> ApiResponse:
        return self.response

    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        return self.response


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Job[Any]]] = []

    @hookimpl
    def taskless_enqueued(self, queue: str, job: Job[Any]) -> None:
        self.calls.append((queue, job))


# -- the specs -------------------------------------------------------------------------------


def spec_functions() -> list[Any]:
    return [
        member
        for name, member in inspect.getmembers(TasklessHookspecs, inspect.isfunction)
        if not name.startswith("_")
    ]


def test_the_hooks() -> None:
    assert {f.__name__ for f in spec_functions()} == {
        "taskless_transports",
        "taskless_enqueued",
        "taskless_delivery_received",
        "taskless_delivery_handled",
        "taskless_attempt_finished",
    }


@pytest.mark.parametrize("spec", spec_functions(), ids=lambda f: f.__name__)
def test_every_hook_is_prefixed_typed_and_documents_its_parameters(spec: Any) -> None:
    assert spec.__name__.startswith("taskless_")
    doc = inspect.getdoc(spec) or ""
    assert doc
    signature = inspect.signature(spec)
    assert signature.return_annotation is not inspect.Signature.empty
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        assert parameter.annotation is not inspect.Parameter.empty, name
        assert f":param {name}:" in doc, name


# -- the plugin manager ----------------------------------------------------------------------


def test_the_plugin_manager_is_shared_and_has_the_builtins() -> None:
    manager = plugin_manager()
    assert manager is plugin_manager()
    assert manager.project_name == "taskless"
    assert manager.has_plugin("taskless.core.http")


def test_importing_builds_no_plugin_manager_and_loads_no_plugin() -> None:
    code = (
        "import sys, taskless.core.queue, taskless.core.hooks as hooks; "
        "print(hooks._manager is None, 'taskless.core.http' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.stdout.split() == ["True", "False"], result.stderr


def test_register_and_unregister() -> None:
    recorder = Recorder()
    name = register(recorder)
    try:
        assert plugin_manager().is_registered(recorder)
        with pytest.raises(ValueError):
            register(recorder)
    finally:
        unregister(recorder)
    assert not plugin_manager().is_registered(recorder)
    assert name


def test_a_misspelt_hook_is_refused_and_left_unregistered() -> None:
    class Typo:
        @hookimpl
        def taskless_enqueud(self, queue: str) -> None: ...

    typo = Typo()
    with pytest.raises(pluggy.PluginValidationError, match="taskless_enqueud"):
        register(typo)
    assert not plugin_manager().is_registered(typo)


def test_an_unknown_parameter_is_refused() -> None:
    class Wrong:
        @hookimpl
        def taskless_enqueued(self, queue: str, jobs: Any) -> None: ...

    with pytest.raises(pluggy.PluginValidationError):
        register(Wrong())


# -- entry points ----------------------------------------------------------------------------


@pytest.fixture
def entry_point_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("taskless_demo_plugin")
    module.seen = []  # type: ignore[attr-defined]

    @hookimpl
    def taskless_enqueued(queue: str, job: Job[Any]) -> None:
        module.seen.append(queue)

    module.taskless_enqueued = taskless_enqueued  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "taskless_demo_plugin", module)
    return module


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *points: EntryPoint) -> None:
    def entry_points(*, group: str) -> list[EntryPoint]:
        assert group == "taskless"
        return list(points)

    monkeypatch.setattr(hooks, "entry_points", entry_points)


def test_plugins_are_loaded_from_the_taskless_entry_point_group(
    monkeypatch: pytest.MonkeyPatch, entry_point_module: types.ModuleType
) -> None:
    fake_entry_points(monkeypatch, EntryPoint("demo", "taskless_demo_plugin", "taskless"))
    manager = build_plugin_manager()
    assert manager.get_plugin("demo") is entry_point_module
    manager.hook.taskless_enqueued(queue="emails", job=None)
    assert entry_point_module.seen == ["emails"]
    assert not build_plugin_manager(load_entry_points=False).has_plugin("demo")


def test_a_broken_entry_point_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(monkeypatch, EntryPoint("broken", "taskless_no_such_module", "taskless"))
    with pytest.raises(ConfigurationError, match="'broken'.*taskless_no_such_module"):
        build_plugin_manager()


def test_the_shared_manager_loads_entry_points_on_first_use(
    monkeypatch: pytest.MonkeyPatch, entry_point_module: types.ModuleType
) -> None:
    fake_entry_points(monkeypatch, EntryPoint("demo", "taskless_demo_plugin", "taskless"))
    monkeypatch.setattr(hooks, "_manager", None)
    assert plugin_manager().get_plugin("demo") is entry_point_module


# -- observers -------------------------------------------------------------------------------


def test_enqueue_calls_taskless_enqueued() -> None:
    recorder = Recorder()
    with registered(recorder):
        queue = Queue("emails", settings=SETTINGS, transport=Canned(ApiResponse(200, JOB)))
        job = queue.enqueue("welcome", {"to": "ada@example.com"})
        queue.get("welcome")
        queue.update("welcome", options={"retries": 1})
    assert recorder.calls == [("emails", job)]


@pytest.mark.anyio
async def test_async_enqueue_calls_taskless_enqueued() -> None:
    recorder = Recorder()
    with registered(recorder):
        queue = AsyncQueue("emails", settings=SETTINGS, transport=Canned(ApiResponse(201, JOB)))
        job = await queue.enqueue(None, {"to": "ada@example.com"})
    assert recorder.calls == [("emails", job)]


def test_a_failed_enqueue_calls_no_hook() -> None:
    recorder = Recorder()
    error = ApiResponse(503, {"error": {"code": "unavailable", "message": "down"}})
    with registered(recorder):
        queue = Queue("emails", settings=SETTINGS, transport=Canned(error))
        with pytest.raises(ServerError):
            queue.enqueue("welcome", {})
    assert recorder.calls == []


def test_a_failing_observer_is_logged_and_does_not_fail_the_enqueue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        @hookimpl
        def taskless_enqueued(self) -> None:
            raise RuntimeError("metrics backend down")

    with registered(Broken()), caplog.at_level(logging.ERROR, logger="taskless.hooks"):
        queue = Queue("emails", settings=SETTINGS, transport=Canned(ApiResponse(200, JOB)))
        assert queue.enqueue("welcome", {}).name == "welcome"
    assert "taskless_enqueued" in caplog.text
    assert "metrics backend down" in caplog.text


def test_notify_reaches_every_observer_hook() -> None:
    seen: list[str] = []

    class Everything:
        @hookimpl
        def taskless_delivery_received(self, queue: str) -> None:
            seen.append("received")

        @hookimpl
        def taskless_delivery_handled(self, status: int, error: BaseException | None) -> None:
            seen.append(f"handled {status} {error!r}")

        @hookimpl
        def taskless_attempt_finished(self, run_id: str, attempt: int, status: int | None) -> None:
            seen.append(f"attempt {run_id} {attempt} {status}")

    with registered(Everything()):
        notify("taskless_delivery_received", queue="q", meta=None)
        notify(
            "taskless_delivery_handled", queue="q", meta=None, status=200, error=None, duration=0.1
        )
        notify(
            "taskless_attempt_finished",
            queue="q",
            name="j",
            run_id="run_1",
            attempt=2,
            status=None,
            error="timeout",
            duration=30.0,
        )
    assert seen == ["received", "handled 200 None", "attempt run_1 2 None"]


def test_notify_refuses_a_hook_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="taskless_enqueud"):
        notify("taskless_enqueud", queue="q", job=None)


def test_notify_without_observers_calls_nothing_and_later_observers_are_called() -> None:
    notify("taskless_attempt_finished", queue="q", name="j", run_id="r", attempt=1,
           status=200, error=None, duration=0.0)
    seen: list[int] = []

    class Observer:
        @hookimpl
        def taskless_attempt_finished(self, attempt: int) -> None:
            seen.append(attempt)

    with registered(Observer()):
        notify("taskless_attempt_finished", queue="q", name="j", run_id="r", attempt=2,
               status=200, error=None, duration=0.0)
    notify("taskless_attempt_finished", queue="q", name="j", run_id="r", attempt=3,
           status=200, error=None, duration=0.0)
    assert seen == [2]
