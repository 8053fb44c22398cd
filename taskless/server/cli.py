"""The ``taskless`` command.

::

    taskless dev                      a development job server on 127.0.0.1:3001 (SQLite in
                                      ./.taskless/, development secrets, any loopback endpoint)
    taskless serve                    a production job server (settings from TASKLESS_*)
    taskless schedule RUN_AT RUN_EVERY [-n N] [--timezone TZ] [--after TIME]
                                      print the runs of a schedule, one timestamp per line
    taskless jobs QUEUE               list the jobs of a queue      } over the HTTP API of
    taskless job QUEUE NAME           show one job as JSON          } TASKLESS_URL with
    taskless runs QUEUE NAME          show a job's run history      } TASKLESS_API_KEY

``dev`` and ``serve`` print ``listening on <url>`` once they accept requests (``--port 0``
picks a free port), so scripts and tests can start one and wait for that line. SIGTERM and
SIGINT (Ctrl-C) shut them down gracefully (requests and the deliveries in flight finish,
within their grace) and the exit status is 0.
Exit status: 0 success, 1 failure, 2 bad usage or settings, 141 when stdout closes early
(``taskless schedule ... | head -1``; quietly, as for a command ended by SIGPIPE). ``schedule``
prints the runs that exist and, on stderr, a note when the schedule ends (the year 9999)
before ``-n`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, TextIO

from taskless import __version__
from taskless.core.errors import ConfigurationError, TasklessError, ValidationError, require
from taskless.core.names import validate_name
from taskless.core.settings import (
    DEVELOPMENT,
    PRODUCTION,
    Settings,
)

__all__ = ["main"]

DEV_HOST = "127.0.0.1"
DEV_PORT = 3001
READY_PREFIX = "listening on "
#: The largest --limit of ``jobs`` and ``runs`` (the job server's own limit).
MAX_LIMIT = 1000
#: The longest --timeout (a day) and --lease (366 days, the longest retry delay too).
MAX_TIMEOUT = 24 * 3600.0
MAX_LEASE = 366 * 24 * 3600.0


class _UsageError(Exception):
    """Bad input: printed as ``taskless <command>: <message>``, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status: int = args.handler(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, rather than at exit
    except BrokenPipeError:
        # The reader went away (`taskless schedule ... | head -1`): stop quietly, with the
        # status of a command ended by SIGPIPE.
        _discard_stdout()
        return SIGPIPE_STATUS
    except _UsageError as exc:
        print(f"taskless {args.command}: {exc}", file=sys.stderr)
        return 2
    except (ValidationError, ConfigurationError) as exc:
        print(f"taskless {args.command}: {exc}", file=sys.stderr)
        return 2
    except TasklessError as exc:
        print(f"taskless {args.command}: {exc}", file=sys.stderr)
        return 1
    return status


#: The exit status when stdout is closed early: 128 + SIGPIPE, as a shell reports it.
SIGPIPE_STATUS = 141


def _discard_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit fails no more."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no file descriptor (replaced in-process)
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskless", description="Taskless job server and tools."
    )
    parser.add_argument("--version", action="version", version=f"taskless {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    dev = commands.add_parser("dev", help="run a development job server")
    _server_options(dev, default_host=DEV_HOST)
    dev.set_defaults(handler=_dev)

    serve = commands.add_parser("serve", help="run a production job server")
    _server_options(serve, default_host=DEV_HOST)
    serve.set_defaults(handler=_serve)

    schedule = commands.add_parser("schedule", help="print the runs of a schedule")
    schedule.add_argument("run_at", metavar="RUN_AT", help="ISO-8601 with an offset, or 'now'")
    schedule.add_argument("run_every", metavar="RUN_EVERY", help="ISO-8601 duration, e.g. P1D")
    schedule.add_argument("-n", type=int, default=10, help="how many runs (default 10)")
    schedule.add_argument("--timezone", help="IANA time zone for the calendar arithmetic")
    schedule.add_argument(
        "--after", help="only runs after this time ('now' or ISO-8601); default: from RUN_AT"
    )
    schedule.set_defaults(handler=_schedule)

    jobs = commands.add_parser("jobs", help="list the jobs of a queue")
    jobs.add_argument("queue", metavar="QUEUE")
    jobs.add_argument("--limit", type=_integer(1, MAX_LIMIT), default=100)
    _client_options(jobs)
    jobs.set_defaults(handler=_jobs)

    job = commands.add_parser("job", help="show one job")
    job.add_argument("queue", metavar="QUEUE")
    job.add_argument("name", metavar="NAME")
    _client_options(job)
    job.set_defaults(handler=_job)

    runs = commands.add_parser("runs", help="show the run history of a job, newest first")
    runs.add_argument("queue", metavar="QUEUE")
    runs.add_argument("name", metavar="NAME")
    runs.add_argument("--limit", type=_integer(1, MAX_LIMIT), default=20)
    _client_options(runs)
    runs.set_defaults(handler=_runs)
    return parser


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high``, else a usage error (exit
    status 2) naming the flag and the range."""
    rule = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def _seconds(*, zero: bool, high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number of seconds, > 0 (``>= 0`` when ``zero``) and at
    most ``high``; NaN, infinities and anything out of range are usage errors (exit status
    2) naming the flag and the range."""
    rule = "a finite number of seconds " + (">= 0" if zero else "> 0")
    if high is not None:
        rule += f" and at most {high:.0f}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (
            math.isfinite(value)
            and (value >= 0 if zero else value > 0)
            and (high is None or value <= high)
        ):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}")
        return value

    parse.__name__ = "seconds"
    return parse


def _server_options(parser: argparse.ArgumentParser, *, default_host: str) -> None:
    parser.add_argument("--host", default=default_host, help=f"default {default_host}")
    parser.add_argument(
        "--port", type=_integer(0, 65535), default=DEV_PORT,
        help=f"default {DEV_PORT}; 0 picks a free port"
    )
    parser.add_argument("--database", help="TASKLESS_DATABASE, e.g. sqlite:///taskless.db")
    parser.add_argument(
        "--allowed-endpoints", help="TASKLESS_ALLOWED_ENDPOINTS: comma list of URL prefixes"
    )
    parser.add_argument(
        "--concurrency", type=_integer(1), default=64, help="deliveries in flight"
    )
    parser.add_argument(
        "--timeout", type=_seconds(zero=False, high=MAX_TIMEOUT), default=30.0,
        help="seconds per attempt",
    )
    parser.add_argument(
        "--lease", type=_seconds(zero=False, high=MAX_LEASE), default=None,
        help="seconds a claimed delivery stays reserved; when a server dies mid-delivery, "
        "another (or the restarted one) delivers it again after this (default: enough for a "
        "full batch of timeouts, plus a minute)",
    )
    parser.add_argument(
        "--backoff-base", type=_seconds(zero=True), default=1.0, help="retry delay base, s"
    )
    parser.add_argument(
        "--backoff-cap", type=_seconds(zero=True), default=3600.0, help="retry delay cap, s"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the job server (default TASKLESS_URL)")
    parser.add_argument("--api-key", help="default TASKLESS_API_KEY")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


# -- servers ----------------------------------------------------------------------------------


def _server_settings(args: argparse.Namespace, env: str) -> Settings:
    # An empty --database is unset, as an empty TASKLESS_DATABASE is: the default applies.
    overrides: dict[str, Any] = {"env": env, "database": args.database or None}
    if args.allowed_endpoints is not None:
        overrides["allowed_endpoints"] = tuple(
            p.strip() for p in args.allowed_endpoints.split(",") if p.strip()
        )
    # Production: missing secrets are reported with every other problem, by _check_production.
    return Settings.from_env(require_secrets=False, **overrides)


def _check_production(settings: Settings) -> None:
    """Refuse to serve in production with missing, development or weak secrets, or without
    allowed endpoints: one error that lists every problem, each naming its variable."""
    from taskless.core.api import EndpointPolicy

    problems = settings.production_problems()
    if not settings.allowed_endpoints:
        problems.append(
            "TASKLESS_ALLOWED_ENDPOINTS is not set: set the URL prefixes of your app, "
            "comma-separated (e.g. https://app.example.com/), so deliveries only go there"
        )
    else:
        try:
            EndpointPolicy(settings.allowed_endpoints)
        except ValidationError as exc:
            problems.append(f"TASKLESS_ALLOWED_ENDPOINTS: {exc.reason}")
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigurationError(
            "cannot start a production job server; fix these settings (or run 'taskless "
            f"dev' for development):\n{lines}"
        )


def _dev(args: argparse.Namespace) -> int:
    settings = _server_settings(args, DEVELOPMENT)
    return _run_server(args, settings, banner=_dev_banner(settings))


def _serve(args: argparse.Namespace) -> int:
    settings = _server_settings(args, PRODUCTION)
    _check_production(settings)
    return _run_server(args, settings, banner=None)


def _dev_banner(settings: Settings) -> str:
    line = "=" * 78
    allowed = ", ".join(settings.allowed_endpoints)
    endpoints = "any loopback host (127.x.x.x, localhost, [::1])" + (
        f" and {allowed}" if allowed else ""
    )
    return "\n".join([
        line,
        "  TASKLESS JOB SERVER: DEVELOPMENT MODE. Not for production (use 'taskless serve').",
        f"  database                 {settings.database}",
        f"  TASKLESS_API_KEY         {settings.api_key}",
        f"  TASKLESS_SIGNING_SECRET  {settings.signing_secret}",
        f"  deliveries allowed to    {endpoints}",
        line,
    ])


def _check_secrets(settings: Settings) -> None:
    settings.check_signing_secrets()  # names the variable (and the entry of the list)


class _Terminated(BaseException):
    """SIGTERM, as uvicorn raises it again once it has shut down gracefully (a BaseException,
    like KeyboardInterrupt for SIGINT, so that no ``except Exception`` swallows it)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def _sigterm_ends_cleanly() -> Iterator[None]:
    """While serving, uvicorn handles SIGTERM and SIGINT itself: it stops accepting, lets the
    requests in flight finish, runs the app's shutdown (the dispatcher gives its deliveries
    their grace), then raises the signal again with the handler that was there before. For
    SIGINT that is Python's KeyboardInterrupt; for SIGTERM the default handler would end the
    process with status 143 ("Terminated"). This handler turns it into a clean return."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_server(args: argparse.Namespace, settings: Settings, *, banner: str | None) -> int:
    require("uvicorn", "server")
    require("aiohttp", "server")
    _check_secrets(settings)
    from datetime import timedelta

    from taskless.core.engine import Backoff

    from .app import create_app
    from .dispatcher import DispatcherConfig
    from .runner import run

    if args.lease is not None and not args.lease > args.timeout:
        raise _UsageError(
            f"--lease ({args.lease:g} s) must be longer than --timeout ({args.timeout:g} s), "
            "else a slow delivery is delivered again while it is still in flight"
        )
    try:
        config = DispatcherConfig(
            concurrency=args.concurrency,
            timeout=args.timeout,
            backoff=Backoff(args.backoff_base, args.backoff_cap),
            lease=None if args.lease is None else timedelta(seconds=args.lease),
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def ready(url: str) -> None:
        print(f"Taskless job server ({settings.env}) {READY_PREFIX}{url}", flush=True)

    try:
        with _sigterm_ends_cleanly():  # from the database check on: SIGTERM is a clean stop
            _check_database(settings)
            app = create_app(settings, dispatcher=config)
            if banner:
                print(banner, flush=True)
            run(app, args.host, args.port, ready=ready, log_level=args.log_level)
    except OSError as exc:
        print(f"taskless {args.command}: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    return 0


def _check_database(settings: Settings) -> None:
    """Open and close the store once before serving, so that a database that cannot be used
    (unreachable, in use by another process, from a newer taskless) is a one-line error
    rather than a failed startup's traceback. Creates or upgrades the schema."""
    import asyncio

    from .store import StoreUnavailable, store_for_url

    async def check() -> None:
        async with store_for_url(settings.database):
            pass

    try:
        asyncio.run(check())
    except StoreUnavailable as exc:
        raise ConfigurationError(str(exc)) from None


# -- schedule ---------------------------------------------------------------------------------


def _schedule(args: argparse.Namespace) -> int:
    from taskless.core.schedule import Schedule
    from taskless.core.timeutil import format_timestamp, parse_timestamp, utcnow

    if args.n < 0:
        raise ValidationError("n", "must be >= 0")
    run_at = utcnow() if args.run_at == "now" else parse_timestamp(args.run_at, field="run_at")
    schedule = Schedule(run_at, args.run_every, args.timezone)
    if args.after is None:
        start = 0
    else:
        after = utcnow() if args.after == "now" else parse_timestamp(args.after, field="after")
        found = schedule.first_after(after)
        if found is None:
            if args.n:
                _schedule_ends(0, args.n)
            return 0
        start = found[0]
    out: TextIO = sys.stdout
    printed = 0
    for k in range(start, start + args.n):
        try:
            at = schedule.at(k)
        except (OverflowError, ValueError):
            break
        out.write(format_timestamp(at) + "\n")
        printed += 1
    if printed < args.n:
        _schedule_ends(printed, args.n)
    return 0


def _schedule_ends(printed: int, wanted: int) -> None:
    sys.stdout.flush()  # the runs first, then the note
    print(
        f"taskless schedule: the schedule ends at the year 9999 ({printed} of the {wanted} "
        "runs asked for exist)",
        file=sys.stderr,
    )


# -- inspection over the API ------------------------------------------------------------------


def _request(args: argparse.Namespace, *segments: str, query: str = "") -> Any:
    """GET ``/v1/queues/<segments...>`` from the job server; the JSON body, or exit 1."""
    from urllib.parse import quote

    from taskless.core.http import HttpTransport
    from taskless.core.transport import ApiRequest

    # An empty --url or --api-key is not given, as an empty TASKLESS_URL or TASKLESS_API_KEY
    # is unset: the variable, else the development default, applies.
    settings = Settings.from_env(url=args.url or None, api_key=args.api_key or None)
    path = "/v1/queues/" + "/".join(quote(s, safe="") for s in segments) + query
    with HttpTransport.from_settings(settings) as transport:
        response = transport.handle(ApiRequest("GET", path))
    if response.ok:
        return response.json
    error = (response.json or {}).get("error", {}) if isinstance(response.json, dict) else {}
    message = error.get("message") or (
        f"{settings.url} answered {response.status} without a Taskless error body; is "
        "TASKLESS_URL (or --url) the address of a Taskless job server?"
    )
    if error.get("field"):
        message = f"{error['field']}: {message}"
    if response.status == 401:
        message += " (check TASKLESS_API_KEY or --api-key)"
    raise _Failed(message)


class _Failed(TasklessError):
    """The job server refused the request (exit status 1)."""

    code = "cli"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def _jobs(args: argparse.Namespace) -> int:
    validate_name(args.queue, field="queue")
    data = _request(args, args.queue, "jobs", query=f"?limit={args.limit}")
    if args.json:
        _print_json(data)
        return 0
    jobs = data.get("jobs", [])
    _table(
        [[j["name"], j["state"], j.get("nextRunAt") or "-", j["options"].get("runEvery") or "-",
          j["endpoint"]] for j in jobs],
        ["NAME", "STATE", "NEXT RUN", "EVERY", "ENDPOINT"],
    )
    return 0


def _job(args: argparse.Namespace) -> int:
    validate_name(args.queue, field="queue")
    validate_name(args.name, field="name")
    _print_json(_request(args, args.queue, "jobs", args.name))
    return 0


def _runs(args: argparse.Namespace) -> int:
    validate_name(args.queue, field="queue")
    validate_name(args.name, field="name")
    data = _request(args, args.queue, "jobs", args.name, "runs", query=f"?limit={args.limit}")
    if args.json:
        _print_json(data)
        return 0
    _table(
        [[r["runId"], str(r["attempt"]), r["status"], str(r.get("statusCode") or "-"),
          r["startedAt"], r.get("error") or ""] for r in data.get("runs", [])],
        ["RUN ID", "ATTEMPT", "STATUS", "CODE", "STARTED", "ERROR"],
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
