from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskless.core.errors import MissingExtra
from taskless.core.settings import DEV_API_KEY, DEV_SIGNING_SECRET
from taskless.server import cli

PROD_SECRET = "whsec_" + base64.b64encode(b"a production secret").decode()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("TASKLESS_"):
            monkeypatch.delenv(name)
    return monkeypatch


# -- schedule -------------------------------------------------------------------------------


def test_schedule_prints_the_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schedule", "2024-03-01T00:00Z", "P1M-5D", "-n", "4"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2024-03-01T00:00:00Z", "2024-03-27T00:00:00Z", "2024-04-26T00:00:00Z",
        "2024-05-27T00:00:00Z",
    ]


def test_schedule_clamps_to_month_ends(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schedule", "2024-01-31T10:00Z", "P1M", "-n", "4"]) == 0
    assert capsys.readouterr().out.split() == [
        "2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z", "2024-03-31T10:00:00Z",
        "2024-04-30T10:00:00Z",
    ]


def test_schedule_with_timezone_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    # 09:00 in Paris every day, across the March 2024 DST change (31 March)
    args = ["schedule", "2024-03-29T09:00+01:00", "P1D", "-n", "3", "--timezone",
            "Europe/Paris", "--after", "2024-03-29T12:00Z"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.split() == [
        "2024-03-30T08:00:00Z", "2024-03-31T07:00:00Z", "2024-04-01T07:00:00Z",
    ]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["2024-03-01T00:00Z", "P"], "run_every"),
        (["2024-03-01T00:00Z", "P1.5M"], "run_every"),
        (["2024-03-01T00:00", "P1D"], "run_at"),
        (["yesterday", "P1D"], "run_at"),
        (["2024-03-01T00:00Z", "P1D", "--timezone", "Nowhere/City"], "timezone"),
        (["2024-03-01T00:00Z", "P1D", "-n", "-1"], "n"),
    ],
)
def test_schedule_bad_input_names_the_field_and_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], field: str
) -> None:
    assert cli.main(["schedule", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"taskless schedule: {field}")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "dev" in capsys.readouterr().out


# -- serve refuses development settings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "TASKLESS_API_KEY"),
        ({"TASKLESS_API_KEY": DEV_API_KEY, "TASKLESS_SIGNING_SECRET": PROD_SECRET},
         "TASKLESS_API_KEY"),
        ({"TASKLESS_API_KEY": "k"}, "TASKLESS_SIGNING_SECRET"),
        ({"TASKLESS_API_KEY": "k", "TASKLESS_SIGNING_SECRET": DEV_SIGNING_SECRET},
         "TASKLESS_SIGNING_SECRET"),
        ({"TASKLESS_API_KEY": "k", "TASKLESS_SIGNING_SECRET": PROD_SECRET,
          "TASKLESS_PREVIOUS_SIGNING_SECRETS": DEV_SIGNING_SECRET}, "TASKLESS_SIGNING_SECRET"),
        ({"TASKLESS_API_KEY": "k", "TASKLESS_SIGNING_SECRET": PROD_SECRET},
         "TASKLESS_ALLOWED_ENDPOINTS"),
    ],
)
def test_serve_refuses_development_settings(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str],
    variable: str,
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert cli.main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskless serve: ")
    assert variable in err


def test_an_invalid_signing_secret_is_refused(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("TASKLESS_SIGNING_SECRET", "whsec_not base64!")
    assert cli.main(["dev", "--port", "0"]) == 2
    assert "TASKLESS_SIGNING_SECRET" in capsys.readouterr().err


def test_missing_server_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def require(module: str, extra: str) -> None:
        raise MissingExtra(extra, module)

    monkeypatch.setattr(cli, "require", require)
    assert cli.main(["dev", "--port", "0"]) == 2
    assert "pip install 'taskless[server]'" in capsys.readouterr().err


# -- a real server in a subprocess ---------------------------------------------------------------


def start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "taskless", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if cli.READY_PREFIX in line:
            return process, line.split(cli.READY_PREFIX, 1)[1].strip()
    process.kill()
    _, err = process.communicate()
    raise AssertionError(f"the server did not start: {''.join(lines)} {err}")


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKLESS_")}


@pytest.fixture
def dev_server(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    process, url = start(["dev", "--port", "0"], tmp_path, subprocess_env)
    assert process.stdout is not None
    try:
        yield url, ""
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "Traceback" not in err


def test_dev_works_with_no_settings(
    dev_server: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = dev_server
    assert httpx.get(url + "/healthz").json()["status"] == "ok"
    headers = {"authorization": f"Bearer {DEV_API_KEY}"}
    created = httpx.put(
        url + "/v1/queues/emails/jobs/welcome", headers=headers,
        json={"payload": {"a": 1}, "endpoint": "http://127.0.0.1:9/jobs",
              "options": {"runAt": "2999-01-01T00:00:00Z"}},
    )
    assert created.status_code == 201
    assert (tmp_path / ".taskless" / "taskless.db").exists()

    assert cli.main(["jobs", "emails", "--url", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "STATE", "NEXT", "RUN", "EVERY", "ENDPOINT"]
    assert out[1].split()[:3] == ["welcome", "scheduled", "2999-01-01T00:00:00Z"]

    assert cli.main(["job", "emails", "welcome", "--url", url]) == 0
    assert json.loads(capsys.readouterr().out) == created.json()

    assert cli.main(["runs", "emails", "welcome", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"runs": []}

    assert cli.main(["job", "emails", "nope", "--url", url]) == 1
    assert "no job named 'nope'" in capsys.readouterr().err

    assert cli.main(["jobs", "emails", "--url", url, "--api-key", "wrong"]) == 1
    assert "TASKLESS_API_KEY" in capsys.readouterr().err


def test_dev_prints_a_loud_banner(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "taskless", "dev", "--port", "0"], cwd=tmp_path,
        env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    banner = []
    for line in process.stdout:
        banner.append(line)
        if cli.READY_PREFIX in line:
            break
    process.terminate()
    process.communicate(timeout=30)
    text = "".join(banner)
    assert "DEVELOPMENT MODE" in text
    assert DEV_API_KEY in text
    assert DEV_SIGNING_SECRET in text


def test_inspection_without_a_server_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    from taskless.server.runner import bind

    with bind() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert cli.main(["jobs", "q", "--url", url]) == 1
    assert "taskless dev" in capsys.readouterr().err


def test_serve_starts_with_production_settings(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    env = {
        **subprocess_env,
        "TASKLESS_API_KEY": "prod-key",
        "TASKLESS_SIGNING_SECRET": PROD_SECRET,
        "TASKLESS_ALLOWED_ENDPOINTS": "https://app.example.com/",
    }
    process, url = start(
        ["serve", "--port", "0", "--database", f"sqlite:///{tmp_path}/prod.db"], tmp_path, env
    )
    try:
        headers = {"authorization": "Bearer prod-key"}
        refused = httpx.put(
            url + "/v1/queues/q/jobs/a", headers=headers,
            json={"payload": 1, "endpoint": "http://127.0.0.1:9/x"},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "endpoint"
        assert httpx.get(url + "/v1/queues/q/jobs").status_code == 401
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert (tmp_path / "prod.db").exists()
