"""A throwaway PostgreSQL cluster on a loopback port, for the tests and the benchmark.

``PostgresCluster().start()`` runs ``initdb`` and ``pg_ctl start`` in a temporary directory
(port: a free one on 127.0.0.1; unix socket: inside the directory; ``fsync=on``); ``stop()``
shuts it down and ``destroy()`` removes the directory. PostgreSQL refuses to run as root, so
when this process is root the cluster runs as the ``postgres`` user (``nobody`` if there is
none) through ``runuser``.

Run it by hand to get a database to play with::

    python tests/pgcluster.py        # prints a postgresql:// URL; Ctrl-C stops and removes it

No pytest here: the pytest fixtures live in ``conftest_postgres.py``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

__all__ = ["PostgresCluster", "PostgresMissing", "find_bin_dir"]


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """The directory of ``initdb``/``pg_ctl`` (same search as ``tasks.py``)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise PostgresMissing(
        "PostgreSQL's server binaries (initdb, pg_ctl) were not found. The test suite needs "
        "them: run it with 'python3 tasks.py test' (installs Debian's postgresql when run as "
        "root), install them yourself (apt-get install postgresql / brew install postgresql), "
        "or set TASKLESS_TEST_POSTGRES_DSN to a database the tests may use."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _service_user() -> str | None:
    """The user to run PostgreSQL as, or None for the current one."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresMissing("running as root and found neither a 'postgres' nor a 'nobody' user")


class PostgresCluster:
    """One PostgreSQL cluster in a temporary directory.

    :param settings: extra server settings (``-c name=value``); ``fsync`` stays on unless
        given here.
    """

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = find_bin_dir()
        self.user = _service_user()
        # Another user must reach the directory (TMPDIR may be private to root), and the
        # unix socket path inside it must stay short: /tmp when running as someone else.
        self.root = Path(tempfile.mkdtemp(prefix="taskless-pg-", dir="/tmp" if self.user else None))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        if self.user is not None:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, self.user)
        self._initialised = False

    @property
    def url(self) -> str:
        """The ``postgres`` database, as the cluster's superuser ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=timeout, cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{log}"
            )
        return result

    def start(self) -> Self:
        if not self._initialised:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync",
            )
            self._initialised = True
        options = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, clean shutdown; ``immediate``: crash)."""
        if self._initialised and self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        if not self._initialised:
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


if __name__ == "__main__":
    import signal
    import time

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` cleans up like Ctrl-C
    with PostgresCluster() as cluster:
        print(cluster.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
