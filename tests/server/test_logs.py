"""The log throttle: one line per message template per interval, then a count of the repeats."""

from __future__ import annotations

import logging

import pytest

from taskless.server.logs import Throttle, throttled


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> tuple[logging.Logger, Clock, list[str]]:
    clock = Clock()
    log = logging.getLogger("tests.throttle")
    log.filters.clear()
    log.addFilter(Throttle(10.0, clock))
    log.propagate = False
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname} {record.getMessage()}")

    log.handlers[:] = [Collect()]
    log.setLevel(logging.DEBUG)
    return log, clock, lines


def test_repeats_are_held_back_then_counted(logged: tuple[logging.Logger, Clock, list[str]]) -> None:
    log, clock, lines = logged
    for i in range(5):
        log.error("database %s is down", f"db{i}")
        clock.now += 1
    assert lines == ["ERROR database db0 is down"]
    clock.now = 110.0  # 10 s after the first
    log.error("database %s is down", "db9")
    log.error("database %s is down", "db10")
    assert lines == [
        "ERROR database db0 is down",
        "ERROR database db9 is down (4 more like this in the last 10 s not shown)",
    ]
    clock.now = 120.0
    log.error("database %s is down", "db11")
    assert lines[-1] == "ERROR database db11 is down (1 more like this in the last 10 s not shown)"


def test_other_templates_and_levels_pass(logged: tuple[logging.Logger, Clock, list[str]]) -> None:
    log, _, lines = logged
    log.error("database %s is down", "a")
    log.warning("database %s is down", "a")
    log.error("something else: %s", "b")
    log.error("database %s is down", "a")
    assert lines == [
        "ERROR database a is down",
        "WARNING database a is down",
        "ERROR something else: b",
    ]


def test_throttled_adds_one_filter() -> None:
    log = throttled("tests.throttle.once")
    assert throttled("tests.throttle.once") is log
    assert sum(isinstance(f, Throttle) for f in log.filters) == 1
