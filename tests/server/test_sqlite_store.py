"""What only the SQLite store promises, beyond the store contract."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskless.core import engine
from taskless.core.errors import ConfigurationError
from taskless.core.models import JobOptions
from taskless.server.store import StoreUnavailable, store_for_url
from taskless.server.store.sqlite import SCHEMA_VERSION, SQLiteStore, database_path

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def new(name: str = "job") -> engine.JobRecord:
    return engine.create_job("q", name, "http://127.0.0.1/x", {"a": 1}, JobOptions(), T0)


async def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "db" / "taskless.db"  # the directory is created
    async with SQLiteStore(path) as store:
        record = new()
        await store.modify("q", "job", lambda c: record)
    async with SQLiteStore(path) as store:
        assert await store.get("q", "job") == record


async def test_attempts_in_flight_at_a_crash_are_due_again_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "taskless.db"
    lease = timedelta(hours=1)
    async with SQLiteStore(path) as store:
        await store.modify("q", "job", lambda c: new())
        (started,) = await store.claim_due(T0, 10, lease)
    async with SQLiteStore(path) as store:
        # without the restart it would wait for the lease (an hour); now it is due
        assert await store.next_due_at() is not None
        (again,) = await store.claim_due(datetime.now(UTC), 10, lease)
        assert again.run_id == started.run_id
        assert again.attempt == 2


async def test_schema_version_is_recorded_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "taskless.db"
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigurationError, match="newer"):
        await SQLiteStore(path).open()


async def test_a_store_that_is_not_open_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await SQLiteStore(tmp_path / "x.db").get("q", "job")


async def test_database_errors_are_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "taskless.db"
    async with SQLiteStore(path) as store:
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE jobs")
        with pytest.raises(StoreUnavailable):
            await store.get("q", "job")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///.taskless/taskless.db", ".taskless/taskless.db"),
        ("sqlite:////var/lib/taskless.db", "/var/lib/taskless.db"),
        ("sqlite://:memory:", ":memory:"),
        ("SQLite:///x.db", "x.db"),
        ("taskless.db", "taskless.db"),
    ],
)
def test_database_path(url: str, path: str) -> None:
    assert database_path(url) == path


def test_store_for_url() -> None:
    assert isinstance(store_for_url("sqlite:///x.db"), SQLiteStore)
    with pytest.raises(ConfigurationError, match="TASKLESS_DATABASE"):
        store_for_url("mysql://localhost/x")
    with pytest.raises(ConfigurationError, match="TASKLESS_DATABASE"):
        database_path("sqlite://relative.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("garbage", "TASKLESS_DATABASE 'garbage' is not a URL"),
        ("data/taskless.db", "TASKLESS_DATABASE 'data/taskless.db' is not a URL"),
        ("", "TASKLESS_DATABASE '' is not a URL"),
        ("user:secret@db.example.com/jobs", "TASKLESS_DATABASE is not a URL"),  # not shown
    ],
)
def test_a_database_without_a_scheme_is_refused_rather_than_taken_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        store_for_url(url)
    assert str(info.value) == (
        f"{message} (it has no scheme such as sqlite:// or postgresql://); use "
        "sqlite:///path/to/file.db or postgresql://user@host/db"
    )
    assert list(tmp_path.iterdir()) == []


async def test_a_folder_that_cannot_be_created_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = SQLiteStore(str(blocker / "sub" / "taskless.db"))
    with pytest.raises(ConfigurationError, match="TASKLESS_DATABASE: cannot create the folder"):
        await store.open()


async def test_a_file_that_is_not_a_sqlite_database_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n" * 10)
    with pytest.raises(ConfigurationError) as info:
        await SQLiteStore(str(path)).open()
    assert str(info.value) == (
        f"TASKLESS_DATABASE: the file {str(path)!r} is not a SQLite database; give the path "
        "of a Taskless database, or of a new file to create"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]  # no passwd.lock
    assert path.read_text() == "root:x:0:0:root:/root:/bin/bash\n" * 10


async def test_no_lock_file_is_left_behind_by_a_start_that_fails(tmp_path: Path) -> None:
    path = tmp_path / "taskless.db"
    async with SQLiteStore(path):
        pass
    (tmp_path / "taskless.db.lock").unlink()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigurationError, match="newer"):
        await SQLiteStore(path).open()
    assert not (tmp_path / "taskless.db.lock").exists()
    # A folder where the file should be: sqlite3 cannot open it.
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(StoreUnavailable, match="unable to open database file"):
        await SQLiteStore(tmp_path / "folder.db").open()
    assert not (tmp_path / "folder.db.lock").exists()


async def test_the_lock_still_holds_after_a_failed_start_removed_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A store that opened the lock file just before a failed start removed it must not lock
    # that removed file (the next store would not meet its lock): it locks the new file.
    lock = os.path.realpath(tmp_path / "jobs.db") + ".lock"
    removed = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    os.unlink(lock)
    real_open = os.open
    opened: list[str] = []

    def racing_open(file: Any, flags: int, mode: int = 0o777) -> int:
        if file != lock:
            return real_open(file, flags, mode)
        opened.append(file)
        return os.dup(removed) if len(opened) == 1 else real_open(file, flags, mode)

    monkeypatch.setattr(os, "open", racing_open)
    first = SQLiteStore(tmp_path / "jobs.db")
    try:
        await first.open()
        monkeypatch.undo()
        assert opened == [lock, lock]  # the removed file, then the one a next store meets
        with pytest.raises(ConfigurationError, match="in use by another job server"):
            await SQLiteStore(tmp_path / "jobs.db").open()
    finally:
        monkeypatch.undo()
        os.close(removed)
        await first.close()


async def test_a_second_store_on_the_same_file_is_refused_even_through_a_symlink(
    tmp_path: Path,
) -> None:
    first = SQLiteStore(str(tmp_path / "jobs.db"))
    await first.open()
    try:
        link = tmp_path / "link.db"
        link.symlink_to(tmp_path / "jobs.db")
        for path in (str(tmp_path / "jobs.db"), str(link)):
            with pytest.raises(ConfigurationError, match="in use by another job server"):
                await SQLiteStore(path).open()
    finally:
        await first.close()
