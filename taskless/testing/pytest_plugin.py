"""The pytest plugin of Taskless (entry point ``pytest11``): the ``taskless_fake`` fixture.

``taskless_fake`` is a fresh :class:`~taskless.testing.TasklessFake` per test, installed as the
``memory://`` job server with ``TASKLESS_URL=memory://`` set, so every queue the test creates
(and every queue built with ``TASKLESS_URL=memory://``, even at import) reaches it. Configure
it with the ``taskless`` marker (keyword arguments of ``TasklessFake``, plus ``app`` as an
object or a ``"module:attribute"`` string, and ``assert_all_served``)::

    @pytest.mark.taskless(app="myapp.main:app", start="2024-01-01T00:00:00Z")
    def test_signup(taskless_fake): ...

Markers of the module, the class and the test merge, the closest winning per option. Or
define a ``taskless_app`` fixture returning your app. At teardown the test fails if a
delivery found nothing to serve it (no app or handler for its endpoint, or a 404 from the app's
receiver): turn that off with
``@pytest.mark.taskless(assert_all_served=False)``.

The ini option ``taskless_url`` (e.g. ``memory://``) sets ``TASKLESS_URL`` before conftest
files are imported, for apps that build their queues at import time.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterator
from typing import Any, get_args

import pytest

from taskless.testing.fake import Delivery, Mode, TasklessFake

__all__ = ["taskless_fake"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "taskless_url",
        "TASKLESS_URL to set before conftest files are imported (e.g. memory://)",
        default="",
    )


_previous_url = pytest.StashKey[tuple[bool, str | None]]()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    url = str(early_config.getini("taskless_url") or "").strip()
    if url:
        early_config.stash[_previous_url] = (True, os.environ.get("TASKLESS_URL"))
        os.environ["TASKLESS_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    changed, previous = config.stash.get(_previous_url, (False, None))
    if changed:
        if previous is None:
            os.environ.pop("TASKLESS_URL", None)
        else:
            os.environ["TASKLESS_URL"] = previous


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "taskless(app=None, mode='app', start=None, assert_all_served=True, **options): "
        "configure the taskless_fake fixture (options of taskless.testing.TasklessFake)",
    )


_MODES: tuple[str, ...] = get_args(Mode)


def _marker_arguments() -> list[str]:
    fake_options = [
        name
        for name, parameter in inspect.signature(TasklessFake).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    return ["app", *fake_options, "assert_all_served"]


def _merged_options(node: pytest.Item) -> dict[str, Any]:
    """The options of every ``taskless`` marker that applies to the test, merged: each option
    from the closest marker that gives it (function over class over module; of two markers
    on one level, the one pytest lists first: on a test, the decorator nearest the function)."""
    options: dict[str, Any] = {}
    for marker in node.iter_markers("taskless"):  # closest first
        for name, value in _marker_options(marker).items():
            options.setdefault(name, value)
    mode = options.get("mode", "app")
    if mode not in _MODES:
        raise pytest.UsageError(
            f"@pytest.mark.taskless: mode={mode!r} is not a mode; valid modes: "
            + ", ".join(map(repr, _MODES))
        )
    return options


def _marker_options(marker: pytest.Mark) -> dict[str, Any]:
    """One marker's keyword arguments, checked: a mistake is a usage error, never ignored."""
    valid = _marker_arguments()
    listed = ", ".join(valid)
    if marker.args:
        shown = ", ".join(repr(arg) for arg in marker.args)
        hint = (
            f" (did you mean app={marker.args[0]!r}?)"
            if len(marker.args) == 1 and not marker.kwargs.get("app")
            else ""
        )
        raise pytest.UsageError(
            f"@pytest.mark.taskless takes keyword arguments only, got positional {shown}"
            f"{hint}; valid arguments: {listed}"
        )
    unknown = [name for name in marker.kwargs if name not in valid]
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.taskless: unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"valid arguments: {listed}"
        )
    return dict(marker.kwargs)


def _load(app: Any) -> Any:
    if not isinstance(app, str):
        return app
    module, _, attribute = app.partition(":")
    if not attribute:
        raise pytest.UsageError(f"taskless marker: app={app!r} must be 'module:attribute'")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@pytest.fixture
def taskless_fake(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TasklessFake]:
    """A fresh in-memory Taskless job server with a virtual clock, serving ``memory://``."""
    options = _merged_options(request.node)
    check_served = options.pop("assert_all_served", True)
    if not isinstance(check_served, bool):
        raise pytest.UsageError(
            "@pytest.mark.taskless: assert_all_served must be True or False, "
            f"not {check_served!r}"
        )
    app = _load(options.pop("app", None))
    if app is None:
        try:
            app = request.getfixturevalue("taskless_app")
        except pytest.FixtureLookupError:
            app = None
    try:
        fake = TasklessFake(app, **options)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"@pytest.mark.taskless: {exc}") from None
    monkeypatch.setenv("TASKLESS_URL", fake.url)
    with fake:
        yield fake
    unserved = [d for d in fake.deliveries() if _unserved(d)]
    if check_served and unserved:
        listed = "\n".join(f"  {d}" for d in unserved[:10])
        more = f"\n  ... and {len(unserved) - 10} more" if len(unserved) > 10 else ""
        pytest.fail(
            f"{len(unserved)} delivery attempt(s) found nothing to serve them (no app or "
            "handler for the endpoint, or the app answered 404):\n"
            f"{listed}{more}\nMount your app at the endpoint's base URL "
            "(@pytest.mark.taskless(app=...), a taskless_app fixture, or "
            "taskless_fake.mount(app, base_url=...)) and declare the queue, or turn this check "
            "off with @pytest.mark.taskless(assert_all_served=False).",
            pytrace=False,
        )


def _unserved(delivery: Delivery) -> bool:
    """Nothing served the attempt: no app or handler took it (no answer), or the app's
    receiver answered 404 (no queue is registered at that path)."""
    return (delivery.status is None and delivery.unserved) or delivery.status == 404
