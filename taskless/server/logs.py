"""Keeping the job server's log readable while something stays broken.

During a database outage the same few messages would otherwise repeat many times a second: every
refused API request, every reconnection attempt of the connection pool. :class:`Throttle` lets
the first of a kind through, holds back the repeats for a while, and says how many it held back
when it next lets one through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Throttle", "throttled"]


class Throttle(logging.Filter):
    """A filter that passes one record per message template (``record.msg``, before its
    arguments are merged) and level every ``interval`` seconds. The next record that passes
    after some were held back ends with ``(N more like this in the last ... not shown)``."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, record.msg)
        now = self._clock()
        with self._lock:
            since, held = self._seen.get(key, (None, 0))
            if since is not None and now - since < self.interval:
                self._seen[key] = (since, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval:g} s not shown)"
        return True


def throttled(name: str, interval: float = 10.0) -> logging.Logger:
    """The logger ``name``, with one :class:`Throttle` on it (added once)."""
    log = logging.getLogger(name)
    if not any(isinstance(f, Throttle) for f in log.filters):
        log.addFilter(Throttle(interval))
    return log
