"""``python -m taskless``: the ``taskless`` command (``python -m taskless dev``, ...)."""

from __future__ import annotations

import sys

from taskless.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
