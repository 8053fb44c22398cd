from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from taskless.server.app import create_app
from taskless.server.runner import ServerThread, bind, serve
from taskless.server.store.sqlite import SCHEMA_VERSION, SQLiteStore

from .conftest import API_KEY, SETTINGS


def test_server_thread_serves_the_job_server(tmp_path: Path) -> None:
    app = create_app(SETTINGS, store=SQLiteStore(tmp_path / "t.db"))
    with ServerThread(app) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        health = httpx.get(server.url + "/healthz").json()
        assert health == {"status": "ok", "dispatcher": "running"}
        listed = httpx.get(
            server.url + "/v1/queues/q/jobs", headers={"authorization": f"Bearer {API_KEY}"}
        )
        assert listed.json() == {"jobs": []}
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz")


def test_a_server_that_cannot_start_says_so(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    app = create_app(SETTINGS, store=SQLiteStore(path))
    with pytest.raises(RuntimeError, match="failed to start|did not start"):
        ServerThread(app, log_level="critical").start(timeout=10)


@pytest.mark.anyio
async def test_serve_in_the_current_loop(tmp_path: Path) -> None:
    app = create_app(SETTINGS, store=SQLiteStore(tmp_path / "s.db"), dispatcher=False)
    async with serve(app) as url, httpx.AsyncClient() as client:
        health = (await client.get(url + "/healthz")).json()
        assert health == {"status": "ok", "dispatcher": "off"}


def test_bind_picks_a_free_port() -> None:
    with bind() as first, bind() as second:
        assert first.getsockname()[1] != second.getsockname()[1] != 0


@pytest.mark.anyio
async def test_health_is_503_once_the_dispatcher_has_stopped(tmp_path: Path) -> None:
    app = create_app(SETTINGS, store=SQLiteStore(tmp_path / "s.db"))
    async with serve(app) as url, httpx.AsyncClient() as client:
        running = await client.get(url + "/healthz")
        assert (running.status_code, running.json()) == (
            200, {"status": "ok", "dispatcher": "running"}
        )
        await app.state.taskless.dispatcher.stop(grace=0)
        stopped = await client.get(url + "/healthz")
        assert stopped.status_code == 503
        assert stopped.json()["error"] == {
            "code": "unavailable",
            "message": "the dispatcher has stopped, so no job is delivered: see the job "
            "server's log, and restart it",
        }
