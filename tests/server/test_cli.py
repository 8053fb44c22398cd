from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskless.core.errors import MissingExtra
from taskless.core.settings import DEV_API_KEY, DEV_SIGNING_SECRET
from taskless.server import cli

PROD_SECRET = "whsec_" + base64.b64encode(b"a production secret, 32 bytes..").decode()
PROD_KEY = "a-production-api-key"


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


def test_schedule_at_the_end_of_time_prints_what_exists_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["schedule", "9999-12-31T00:00Z", "P1D", "-n", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["9999-12-31T00:00:00Z"]
    assert captured.err == (
        "taskless schedule: the schedule ends at the year 9999 (1 of the 3 runs asked for "
        "exist)\n"
    )


def test_schedule_after_the_end_of_time_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["schedule", "2024-06-01T00:00Z", "P1D", "-n", "2", "--after", "9999-12-31T12:00Z"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "the schedule ends at the year 9999 (0 of the 2" in captured.err


def test_schedule_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "taskless", "schedule", "2024-06-01T09:00Z", "P1D", "-n",
         "100000"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"2024-06-01T09:00:00Z\n"
    process.stdout.close()  # as `| head -1` does
    err = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == cli.SIGPIPE_STATUS
    assert err == b""


def test_a_closed_stdout_in_process_is_the_sigpipe_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli.main(["schedule", "2024-06-01T09:00Z", "P1D", "-n", "5"]) == cli.SIGPIPE_STATUS
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("args", "field"),
    [(["jobs", "bad name"], "queue"), (["job", "emails", "a%b"], "name"),
     (["runs", "café", "a"], "queue")],
)
def test_inspection_names_the_bad_field(
    capsys: pytest.CaptureFixture[str], args: list[str], field: str
) -> None:
    assert cli.main([*args, "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"taskless {args[0]}: {field}: ")
    assert "is not allowed: use ASCII letters" in err


def test_an_empty_api_key_or_url_flag_is_not_given(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from taskless.core.settings import Settings
    from taskless.server.app import create_app
    from taskless.server.runner import ServerThread

    settings = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with ServerThread(create_app(settings, dispatcher=False)) as server:
        # Development (no TASKLESS_ENV): the development key, as with TASKLESS_API_KEY=.
        assert cli.main(["jobs", "raw", "--url", server.url, "--api-key", ""]) == 0
        assert capsys.readouterr() == ("NAME  STATE  NEXT RUN  EVERY  ENDPOINT\n", "")
        # An empty --url leaves TASKLESS_URL in charge, an empty --api-key TASKLESS_API_KEY.
        clean_env.setenv("TASKLESS_URL", server.url)
        assert cli.main(["runs", "raw", "x", "--url", "", "--api-key", ""]) == 1
        assert capsys.readouterr().err == "taskless runs: no job named 'x' in queue 'raw'\n"
        clean_env.setenv("TASKLESS_API_KEY", "wrong")
        assert cli.main(["job", "raw", "x", "--api-key", ""]) == 1
        assert "missing or wrong API key" in capsys.readouterr().err


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
        ({"TASKLESS_API_KEY": PROD_KEY}, "TASKLESS_SIGNING_SECRET"),
        ({"TASKLESS_API_KEY": PROD_KEY, "TASKLESS_SIGNING_SECRET": DEV_SIGNING_SECRET},
         "TASKLESS_SIGNING_SECRET"),
        ({"TASKLESS_API_KEY": PROD_KEY, "TASKLESS_SIGNING_SECRET": PROD_SECRET,
          "TASKLESS_PREVIOUS_SIGNING_SECRETS": DEV_SIGNING_SECRET},
         "TASKLESS_PREVIOUS_SIGNING_SECRETS holds the development secret"),
        ({"TASKLESS_API_KEY": PROD_KEY, "TASKLESS_SIGNING_SECRET": PROD_SECRET},
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


def test_serve_reports_every_missing_setting_at_once(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskless serve: cannot start a production job server")
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert [p.split()[1] for p in problems] == [
        "TASKLESS_API_KEY", "TASKLESS_SIGNING_SECRET", "TASKLESS_ALLOWED_ENDPOINTS",
    ]
    assert "secrets.token_urlsafe(32)" in problems[0]
    assert "'whsec_' + base64.b64encode(" in problems[1]


def test_serve_refuses_weak_secrets_naming_each_and_the_fix(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("TASKLESS_API_KEY", "k")
    clean_env.setenv("TASKLESS_SIGNING_SECRET", "whsec_" + base64.b64encode(b"12345").decode())
    clean_env.setenv("TASKLESS_ALLOWED_ENDPOINTS", "https://app.example.com/,not a url")
    assert cli.main(["serve", "--port", "0"]) == 2
    problems = [
        line[4:] for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")
    ]
    assert len(problems) == 3
    assert problems[0].startswith(
        "TASKLESS_API_KEY is too short (1 characters, at least 16); generate one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
    assert problems[1].startswith(
        "TASKLESS_SIGNING_SECRET is too short (5 bytes once base64-decoded, at least 24); "
        "generate one ('whsec_' followed by base64)"
    )
    assert problems[2].startswith("TASKLESS_ALLOWED_ENDPOINTS: 'not a url' is not an http(s)")


API_KEY_HINT_START = 'generate one with: python -c "import secrets;'
UNUSABLE = (
    "TASKLESS_API_KEY holds characters an HTTP header cannot carry (non-ASCII, control "
    "characters or spaces at its ends); "
)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (" " * 20, "TASKLESS_API_KEY is blank (only whitespace); "),
        ("\t" * 4 + " " * 16, "TASKLESS_API_KEY is blank (only whitespace); "),
        ("clé-de-production-très-longue", UNUSABLE),
        ("a-production-api-key\x1b[0m", UNUSABLE),
        ("a-production-api-key\x7f", UNUSABLE),
        ("  a-production-api-key", UNUSABLE),
        ("a-production-api-key ", UNUSABLE),
    ],
)
def test_serve_refuses_an_api_key_no_request_could_send(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str, problem: str
) -> None:
    clean_env.setenv("TASKLESS_API_KEY", key)
    clean_env.setenv("TASKLESS_SIGNING_SECRET", PROD_SECRET)
    clean_env.setenv("TASKLESS_ALLOWED_ENDPOINTS", "https://app.example.com/")
    assert cli.main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskless serve: cannot start a production job server")
    problems = [line[4:] for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1
    assert problems[0].startswith(problem + API_KEY_HINT_START)
    assert key.strip() == "" or key.strip() not in err  # the key itself is never shown


def test_an_api_key_with_a_nul_or_a_line_break_is_a_production_problem() -> None:
    from taskless.core.settings import Settings

    for key in ("a-production-api-key\x00", "a-production\r\napi-key"):
        settings = Settings(env="production", api_key=key, signing_secret=PROD_SECRET)
        (problem,) = settings.production_problems()
        assert problem.startswith(UNUSABLE)
    # Spaces inside a key can go in a header: such a key is accepted.
    inside = Settings(env="production", api_key="a production api key", signing_secret=PROD_SECRET)
    assert inside.production_problems() == []


def test_the_secret_fix_the_message_gives_makes_an_accepted_secret(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskless.core.settings import API_KEY_HINT, SIGNING_SECRET_HINT, Settings

    def run(hint: str) -> str:
        command = hint.split("python -c ", 1)[1]
        code = command.strip('"').replace('\\"', '"')
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()

    settings = Settings(
        env="production", api_key=run(API_KEY_HINT), signing_secret=run(SIGNING_SECRET_HINT),
    )
    assert settings.production_problems() == []


def test_a_short_previous_secret_may_still_rotate_out() -> None:
    from taskless.core.settings import Settings

    short = "whsec_" + base64.b64encode(b"old and short").decode()
    settings = Settings(env="production", api_key=PROD_KEY, signing_secret=PROD_SECRET,
                        previous_signing_secrets=(short,))
    assert settings.production_problems() == []


def test_production_settings_name_every_missing_secret() -> None:
    from taskless.core.errors import ConfigurationError
    from taskless.core.settings import Settings

    for environ in ({"TASKLESS_ENV": "production"},
                    {"TASKLESS_ENV": "production", "TASKLESS_API_KEY": PROD_KEY}):
        with pytest.raises(ConfigurationError) as info:
            Settings.from_env(environ)
        assert str(info.value) == (
            "TASKLESS_SIGNING_SECRET is not set; production needs it (or set "
            "TASKLESS_ENV=development)"
        )


def test_a_production_app_that_only_receives_needs_no_api_key() -> None:
    from taskless.core.errors import ConfigurationError
    from taskless.core.queue import Queue
    from taskless.core.settings import Settings

    settings = Settings.from_env(
        {"TASKLESS_ENV": "production", "TASKLESS_SIGNING_SECRET": PROD_SECRET}
    )
    assert settings.api_key == ""
    from taskless.integrations.aws_lambda import Taskless

    receiver_only = Taskless(settings=settings)  # builds its receiver: no key needed
    assert receiver_only.receiver is not None
    with pytest.raises(ConfigurationError) as info:
        Queue("emails", settings=settings)
    assert str(info.value) == (
        "TASKLESS_API_KEY is not set; production needs it to call the job server (enqueue, "
        "update, get, delete): set it to the key the job server was started with"
    )


def test_development_defaults_are_unchanged() -> None:
    from taskless.core.settings import Settings

    settings = Settings.from_env({})
    assert (settings.api_key, settings.signing_secret) == (DEV_API_KEY, DEV_SIGNING_SECRET)


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


@pytest.mark.parametrize("command", ["dev", "serve"])
def test_a_database_that_is_not_a_url_is_refused_and_no_file_created(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    command: str,
) -> None:
    clean_env.chdir(tmp_path)
    clean_env.setenv("TASKLESS_DATABASE", "garbage")
    if command == "serve":
        clean_env.setenv("TASKLESS_API_KEY", PROD_KEY)
        clean_env.setenv("TASKLESS_SIGNING_SECRET", PROD_SECRET)
        clean_env.setenv("TASKLESS_ALLOWED_ENDPOINTS", "https://app.example.com/")
    assert cli.main([command, "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"taskless {command}: TASKLESS_DATABASE 'garbage' is not a URL (it has no scheme such "
        "as sqlite:// or postgresql://); use sqlite:///path/to/file.db or "
        "postgresql://user@host/db"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_sqlite_database_is_a_one_line_error(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert cli.main(["dev", "--port", "0", "--database", f"sqlite:///{passwd}"]) == 2
    assert capsys.readouterr().err == (
        f"taskless dev: TASKLESS_DATABASE: the file {str(passwd)!r} is not a SQLite database; "
        "give the path of a Taskless database, or of a new file to create\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["passwd"]


def test_an_empty_database_flag_is_the_default(clean_env: pytest.MonkeyPatch) -> None:
    settings = cli._server_settings(cli._parser().parse_args(["dev", "--database", ""]),
                                    "development")
    assert settings.database == "sqlite:///.taskless/taskless.db"


# -- bad server flags: usage errors before anything starts ---------------------------------------


def usage_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``args``, which argparse must refuse with exit status 2; the error line."""
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "flag", "value"),
    [
        (["dev", "--backoff-base", "-1"], "--backoff-base", "-1"),
        (["dev", "--backoff-base", "nan"], "--backoff-base", "nan"),
        (["dev", "--backoff-base", "1e308", "--backoff-cap", "inf"], "--backoff-cap", "inf"),
        (["serve", "--backoff-cap", "-5"], "--backoff-cap", "-5"),
    ],
)
def test_a_backoff_that_cannot_compute_a_delay_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], flag: str, value: str
) -> None:
    assert usage_error(capsys, [*args, "--port", "0"]) == (
        f"taskless {args[0]}: error: argument {flag}: must be a finite number of seconds >= 0, "
        f"not '{value}'"
    )


SECONDS = "must be a finite number of seconds > 0 and at most"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["dev", "--port", "-1"], "argument --port: must be an integer from 0 to 65535, not '-1'"),
        (["serve", "--port", "99999"],
         "argument --port: must be an integer from 0 to 65535, not '99999'"),
        (["dev", "--lease", "inf"], f"argument --lease: {SECONDS} 31622400, not 'inf'"),
        (["dev", "--lease", "nan"], f"argument --lease: {SECONDS} 31622400, not 'nan'"),
        (["dev", "--lease", "1e20"], f"argument --lease: {SECONDS} 31622400, not '1e20'"),
        (["dev", "--lease", "-5"], f"argument --lease: {SECONDS} 31622400, not '-5'"),
        (["dev", "--timeout", "0"], f"argument --timeout: {SECONDS} 86400, not '0'"),
        (["dev", "--timeout", "nan"], f"argument --timeout: {SECONDS} 86400, not 'nan'"),
        (["serve", "--timeout", "inf"], f"argument --timeout: {SECONDS} 86400, not 'inf'"),
        (["dev", "--timeout", "-1"], f"argument --timeout: {SECONDS} 86400, not '-1'"),
        (["dev", "--concurrency", "0"], "argument --concurrency: must be an integer >= 1, not '0'"),
        (["dev", "--concurrency", "-3"],
         "argument --concurrency: must be an integer >= 1, not '-3'"),
        (["jobs", "q", "--limit", "0"],
         "argument --limit: must be an integer from 1 to 1000, not '0'"),
        (["jobs", "q", "--limit", "nan"],
         "argument --limit: must be an integer from 1 to 1000, not 'nan'"),
        (["runs", "q", "n", "--limit", "-1"],
         "argument --limit: must be an integer from 1 to 1000, not '-1'"),
        (["runs", "q", "n", "--limit", "1001"],
         "argument --limit: must be an integer from 1 to 1000, not '1001'"),
    ],
)
def test_a_number_out_of_range_is_a_usage_error_naming_the_flag_and_the_range(
    capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    assert usage_error(capsys, args) == f"taskless {args[0]}: error: {error}"


@pytest.mark.parametrize("flag", [["--port", "99999"], ["--lease", "inf"]])
def test_the_command_exits_2_with_the_usage_and_no_traceback(
    tmp_path: Path, flag: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskless", "dev", *flag], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: taskless dev ")
    assert result.stderr.splitlines()[-1].startswith(f"taskless dev: error: argument {flag[0]}: ")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started, no database created


def test_the_ends_of_the_ranges_are_accepted() -> None:
    parse = cli._parser().parse_args
    args = parse(["dev", "--port", "65535", "--timeout", "86400", "--lease", "31622400",
                  "--concurrency", "1"])
    assert (args.port, args.timeout, args.lease, args.concurrency) == (
        65535, 86400.0, 31622400.0, 1
    )
    assert parse(["serve", "--port", "0"]).port == 0
    assert parse(["jobs", "q", "--limit", "1"]).limit == 1
    assert parse(["runs", "q", "n", "--limit", "1000"]).limit == 1000


def test_a_backoff_of_zero_is_accepted() -> None:
    args = cli._parser().parse_args(["dev", "--backoff-base", "0", "--backoff-cap", "0"])
    assert (args.backoff_base, args.backoff_cap) == (0.0, 0.0)


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
        "TASKLESS_API_KEY": PROD_KEY,
        "TASKLESS_SIGNING_SECRET": PROD_SECRET,
        "TASKLESS_ALLOWED_ENDPOINTS": "https://app.example.com/",
    }
    process, url = start(
        ["serve", "--port", "0", "--database", f"sqlite:///{tmp_path}/prod.db"], tmp_path, env
    )
    try:
        headers = {"authorization": f"Bearer {PROD_KEY}"}
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dev_shuts_down_cleanly_on_sigterm_and_sigint(
    tmp_path: Path, subprocess_env: dict[str, str], signum: signal.Signals
) -> None:
    process, url = start(["dev", "--port", "0"], tmp_path, subprocess_env)
    assert httpx.get(url + "/healthz").status_code == 200
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err  # not 143 (killed by SIGTERM), no "Terminated"
    assert "Traceback" not in err
    assert "Application shutdown complete" in err


class _SlowReceiver:
    """An HTTP endpoint on a loopback port that takes ``delay`` seconds to answer each POST."""

    def __init__(self, delay: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.started = threading.Event()
        self.finished = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.started.set()
                time.sleep(delay)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.finished.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sigterm_lets_the_delivery_in_flight_finish_and_records_it(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    receiver = _SlowReceiver(delay=1.5)
    headers = {"authorization": f"Bearer {DEV_API_KEY}"}
    try:
        process, url = start(["dev", "--port", "0"], tmp_path, subprocess_env)
        created = httpx.put(
            url + "/v1/queues/slow/jobs/one", headers=headers,
            json={"payload": {"n": 1}, "endpoint": receiver.url, "options": {"retries": 0}},
        )
        assert created.status_code == 201, created.text
        assert receiver.started.wait(30)
        process.send_signal(signal.SIGTERM)  # while the delivery is in flight
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert receiver.finished.is_set()
    finally:
        receiver.close()
    # The attempt was recorded before the server stopped: a restarted server knows its result.
    process, url = start(["dev", "--port", "0"], tmp_path, subprocess_env)
    try:
        runs = httpx.get(url + "/v1/queues/slow/jobs/one/runs", headers=headers).json()["runs"]
        job = httpx.get(url + "/v1/queues/slow/jobs/one", headers=headers).json()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert [(r["status"], r["statusCode"]) for r in runs] == [("succeeded", 200)]
    assert job["state"] == "completed"


@pytest.mark.parametrize("command", [["jobs", "raw"], ["job", "raw", "b1"], ["runs", "raw", "b1"]])
def test_inspection_against_a_server_that_is_not_taskless_says_so(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), NotFound) as other:
        thread = threading.Thread(target=other.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{other.server_address[1]}"
        try:
            assert cli.main([*command, "--url", url]) == 1
        finally:
            other.shutdown()
    assert capsys.readouterr().err == (
        f"taskless {command[0]}: {url} answered 404 without a Taskless error body; is "
        "TASKLESS_URL (or --url) the address of a Taskless job server?\n"
    )


def test_sigterm_while_the_database_is_checked_is_a_clean_stop(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    pytest.importorskip("psycopg")
    import socket

    # A port that accepts connections and never answers: the check waits for PostgreSQL.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "taskless", "dev", "--port", "0",
             "--database", f"postgresql://taskless@127.0.0.1:{port}/taskless"],
            cwd=tmp_path, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(1.5)  # in the database check (it gives up after 5 s)
            assert process.poll() is None
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert (process.returncode, err) == (0, ""), err
    assert cli.READY_PREFIX not in out
