#!/usr/bin/env python3
"""Set up and run the project's main commands with nothing but ``python3`` on the machine.

    python3 tasks.py demo     # the main job: a job server delivering real jobs to a FastAPI app
    python3 tasks.py test     # the test suite (starts its own PostgreSQL on loopback)
    python3 tasks.py bench    # the delivery benchmark (see docs/benchmarks.md)

Each command creates ``.venv`` and installs the project with its ``dev`` extra when needed
(again whenever ``pyproject.toml`` changes), then runs inside it. Extra arguments are passed on
(``python3 tasks.py test -k schedule``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".taskless-installed"


def setup() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("setting up .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def find_postgres() -> str | None:
    """Directory holding PostgreSQL's server binaries, or None."""
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return str(Path(shutil.which("initdb") or "").parent)
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return str(candidate)
    return None


def ensure_postgres() -> None:
    """The PostgreSQL tests need a server binary; install Debian's when missing and allowed."""
    if find_postgres() or os.environ.get("TASKLESS_TEST_POSTGRES_DSN"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("installing PostgreSQL (Debian package) for the test suite ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
            check=True, env=env,
        )
    if not find_postgres():
        sys.exit(
            "The test suite needs PostgreSQL's server binaries (initdb, pg_ctl). Install them "
            "(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) or set "
            "TASKLESS_TEST_POSTGRES_DSN to a database the tests may use."
        )


def run(*args: str) -> int:
    return subprocess.run([str(PYTHON), *args], cwd=ROOT, check=False).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    setup()
    if command == "demo":
        return run("examples/demo.py", *rest)
    if command == "bench":
        return run("bench/bench_delivery.py", *rest)
    ensure_postgres()
    code = run("-m", "pytest", *rest)
    if code == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
