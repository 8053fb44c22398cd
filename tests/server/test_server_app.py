"""The job server HTTP API, in-process (httpx.ASGITransport), on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from taskless.core.settings import Settings
from taskless.server.app import create_app
from taskless.server.store.sqlite import SQLiteStore

from .conftest import API_KEY, SETTINGS

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8000/jobs"
JOB = "/v1/queues/emails/jobs/welcome"
BAD_RUN_EVERY = [
    "P", "PT", "PD", "P1DT", "1D", "", "P12M4M", "P1.5M", "P0.5D", "PT1.5H30M",
    "PT999999999999999999999999S",
]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@asynccontextmanager
async def serving(app: Starlette, api_key: str = API_KEY) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` (in-process, its lifespan running) that sends ``api_key``."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://jobs.test",
        headers={"authorization": f"Bearer {api_key}"},
    ) as client:
        yield client


async def _client(settings: Settings, tmp_path: Path, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings, store=SQLiteStore(tmp_path / "api.db"), dispatcher=False, clock=clock
    )
    async with serving(app, settings.api_key) as client:
        yield client


@pytest.fixture
async def client(tmp_path: Path, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(SETTINGS, tmp_path, clock):
        yield c


def job_body(**options: Any) -> dict[str, Any]:
    return {"payload": {"to": "a@example.com"}, "endpoint": ENDPOINT, "options": options}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    return error


async def test_put_creates_then_replaces(client: httpx.AsyncClient, clock: Clock) -> None:
    created = await client.put(JOB, json=job_body(runAt="2024-03-02T09:00:00+02:00"))
    assert created.status_code == 201
    job = created.json()
    assert job["name"] == "welcome"
    assert job["queue"] == "emails"
    assert job["state"] == "scheduled"
    assert job["options"]["runAt"] == "2024-03-02T09:00:00+02:00"
    assert job["nextRunAt"] == "2024-03-02T07:00:00Z"
    assert job["createdAt"] == job["updatedAt"] == "2024-03-01T12:00:00Z"
    clock.now = T0 + timedelta(minutes=1)
    replaced = await client.put(JOB, json=job_body(retries=1))
    assert replaced.status_code == 200
    again = replaced.json()
    assert again["id"] == job["id"]
    assert again["createdAt"] == job["createdAt"]
    assert again["updatedAt"] == "2024-03-01T12:01:00Z"
    assert again["options"]["retries"] == 1
    assert again["options"]["runAt"] == "2024-03-01T12:01:00Z"


async def test_post_generates_a_name(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/queues/emails/jobs", json=job_body())
    second = await client.post("/v1/queues/emails/jobs", json=job_body())
    assert first.status_code == second.status_code == 201
    assert first.json()["name"] != second.json()["name"]
    got = await client.get(f"/v1/queues/emails/jobs/{first.json()['name']}")
    assert got.json() == first.json()


async def test_get_and_delete(client: httpx.AsyncClient) -> None:
    assert (await client.get(JOB)).status_code == 404
    assert error_of(await client.get(JOB))["code"] == "not_found"
    assert (await client.delete(JOB)).status_code == 404
    created = (await client.put(JOB, json=job_body())).json()
    assert (await client.get(JOB)).json() == created
    deleted = await client.delete(JOB)
    assert deleted.status_code == 200
    assert deleted.json() == created
    assert (await client.get(JOB)).status_code == 404


@pytest.mark.parametrize("run_every", BAD_RUN_EVERY)
async def test_every_bad_run_every_is_422_and_stores_nothing(
    client: httpx.AsyncClient, run_every: str
) -> None:
    for options in ({"runEvery": run_every}, {"run_every": run_every}):
        response = await client.put(JOB, json=job_body(**options))
        assert response.status_code == 422
        error = error_of(response)
        assert error["code"] == "invalid"
        assert error["field"] == "options.run_every"
        assert "run_every" in error["message"]
    posted = await client.post("/v1/queues/emails/jobs", json=job_body(runEvery=run_every))
    assert posted.status_code == 422
    assert (await client.get(JOB)).status_code == 404
    assert (await client.get("/v1/queues/emails/jobs")).json() == {"jobs": []}


async def test_bad_run_every_in_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    created = (await client.put(JOB, json=job_body(runEvery="P1D"))).json()
    response = await client.patch(JOB, json={"options": {"runEvery": "P"}})
    assert response.status_code == 422
    assert error_of(response)["field"] == "options.run_every"
    assert (await client.get(JOB)).json() == created


async def test_patch_missing_job_is_404_and_creates_nothing(client: httpx.AsyncClient) -> None:
    response = await client.patch(JOB, json={"payload": {"x": 1}})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert (await client.get(JOB)).status_code == 404
    assert (await client.get("/v1/queues/emails/jobs")).json() == {"jobs": []}


async def test_patch_retries_changes_only_retries(client: httpx.AsyncClient, clock: Clock) -> None:
    created = (await client.put(JOB, json=job_body(
        runAt="2024-03-05T08:00:00-05:00", runEvery="P1W", headers={"x-a": "1"}, retries=7,
    ))).json()
    clock.now = T0 + timedelta(seconds=5)
    patched = await client.patch(JOB, json={"options": {"retries": 2}})
    assert patched.status_code == 200
    job = patched.json()
    assert job["options"] == {**created["options"], "retries": 2}
    for key in ("id", "payload", "endpoint", "state", "nextRunAt", "createdAt"):
        assert job[key] == created[key]
    assert job["updatedAt"] == "2024-03-01T12:00:05Z"


async def test_patch_disable_and_enable(client: httpx.AsyncClient, clock: Clock) -> None:
    await client.put(JOB, json=job_body(runAt="2024-03-01T00:00:00Z", runEvery="PT1H"))
    disabled = (await client.patch(JOB, json={"options": {"enabled": False}})).json()
    assert disabled["state"] == "disabled"
    assert disabled["nextRunAt"] is None
    clock.now = T0 + timedelta(minutes=30)
    enabled = (await client.patch(JOB, json={"options": {"enabled": True}})).json()
    assert enabled["state"] == "scheduled"
    assert enabled["nextRunAt"] == "2024-03-01T13:00:00Z"


async def test_run_now(client: httpx.AsyncClient, clock: Clock) -> None:
    await client.put(JOB, json=job_body(runAt="2024-03-09T00:00:00Z"))
    response = await client.post(JOB + "/run")
    assert response.status_code == 200
    assert response.json()["nextRunAt"] == "2024-03-01T12:00:00Z"
    assert (await client.post("/v1/queues/emails/jobs/missing/run")).status_code == 404
    await client.patch(JOB, json={"options": {"enabled": False}})
    refused = await client.post(JOB + "/run")
    assert refused.status_code == 422
    assert error_of(refused)["field"] == "enabled"


async def test_list_and_runs(client: httpx.AsyncClient) -> None:
    for name in ["b", "a", "c"]:
        await client.put(f"/v1/queues/emails/jobs/{name}", json=job_body())
    listed = (await client.get("/v1/queues/emails/jobs")).json()
    assert [j["name"] for j in listed["jobs"]] == ["a", "b", "c"]
    paged = (await client.get("/v1/queues/emails/jobs", params={"limit": 1, "after": "a"})).json()
    assert [j["name"] for j in paged["jobs"]] == ["b"]
    assert (await client.get("/v1/queues/emails/jobs", params={"limit": 0})).status_code == 422
    assert (await client.get("/v1/queues/emails/jobs/a/runs")).json() == {"runs": []}
    assert (await client.get("/v1/queues/emails/jobs/zz/runs")).status_code == 404


@pytest.mark.parametrize(
    "content",
    [b"{", b"not json", b"", b'{"payload": NaN, "endpoint": "http://127.0.0.1/x"}', b"\xff",
     b"[]", b"null"],
)
async def test_malformed_json_is_422(client: httpx.AsyncClient, content: bytes) -> None:
    for method in ("PUT", "PATCH"):
        response = await client.request(method, JOB, content=content)
        assert response.status_code == 422
        assert error_of(response)["code"] == "invalid"
    assert (await client.post("/v1/queues/emails/jobs", content=content)).status_code == 422
    assert (await client.get(JOB)).status_code == 404


async def test_too_large_body_is_refused(client: httpx.AsyncClient) -> None:
    big = {"payload": "x" * (1024 * 1024), "endpoint": ENDPOINT}
    response = await client.put(JOB, json=big)
    assert response.status_code == 422
    assert error_of(response)["field"] == "body"


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": API_KEY},
     {"authorization": f"Basic {API_KEY}"}, {"authorization": "Bearer "}],
)
async def test_bad_api_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    client.headers.pop("authorization")
    for method, path in [("GET", JOB), ("PUT", JOB), ("GET", "/v1/queues/emails/jobs"),
                         ("DELETE", JOB), ("POST", JOB + "/run")]:
        response = await client.request(method, path, headers=headers, json=job_body())
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    client.headers["authorization"] = f"Bearer {API_KEY}"
    assert (await client.get(JOB)).status_code == 404  # nothing was stored


async def test_endpoint_outside_allowed_is_422(tmp_path: Path, clock: Clock) -> None:
    settings = SETTINGS.replace(env="production", allowed_endpoints=("https://app.example.com/",))
    async for client in _client(settings, tmp_path, clock):
        for endpoint in ("https://evil.example.com/jobs", "http://127.0.0.1:8000/jobs",
                         "https://app.example.com.evil.net/"):
            response = await client.put(JOB, json={"payload": 1, "endpoint": endpoint})
            assert response.status_code == 422
            assert error_of(response)["field"] == "endpoint"
        assert (await client.get(JOB)).status_code == 404
        ok = await client.put(JOB, json={"payload": 1, "endpoint": "https://app.example.com/j"})
        assert ok.status_code == 201


async def test_development_refuses_non_loopback_endpoints(client: httpx.AsyncClient) -> None:
    response = await client.put(JOB, json={"payload": 1, "endpoint": "https://example.com/x"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "endpoint"


async def test_batch(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/queues/emails/jobs:batch", json={"jobs": [
        {"name": "a", "payload": 1, "endpoint": ENDPOINT},
        {"name": "b", "payload": 2, "endpoint": ENDPOINT, "options": {"runEvery": "P"}},
        {"payload": 3, "endpoint": ENDPOINT},
    ]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201]
    assert results[1]["error"]["field"] == "jobs[1].options.run_every"
    assert results[0]["job"]["name"] == "a"
    names = [j["name"] for j in (await client.get("/v1/queues/emails/jobs")).json()["jobs"]]
    assert sorted(names) == sorted(["a", results[2]["job"]["name"]])


async def test_unknown_routes_and_methods_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "no_route"
    not_allowed = await client.request("PATCH", "/v1/queues/emails/jobs")
    assert not_allowed.status_code == 405
    assert "error" in not_allowed.json()


@pytest.mark.parametrize("path", ["/v1/queues/emails/jobs/", "/v1/queues/emails/jobs/abc/"])
async def test_a_trailing_slash_is_a_json_404_not_a_redirect(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.put(path, json=job_body())
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "no_route",
        "message": f"no route {path!r} (paths have no trailing slash); see /openapi.json",
    }
    assert (await client.get("/v1/queues/emails/jobs")).json() == {"jobs": []}


async def test_bad_path_names_are_422(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/queues/emails/jobs/" + "x" * 300, json=job_body())
    assert response.status_code == 422
    assert error_of(response)["field"] == "name"


async def test_health_and_openapi_need_no_key(client: httpx.AsyncClient) -> None:
    client.headers.pop("authorization")
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")


async def test_openapi_describes_exactly_the_routes(tmp_path: Path) -> None:
    app = create_app(SETTINGS, store=SQLiteStore(tmp_path / "x.db"), dispatcher=False)
    served = {
        (route.path, method.lower())
        for route in app.routes if isinstance(route, Route)
        for method in (route.methods or ()) if method != "HEAD"
    }
    from taskless.server.openapi import openapi_document

    described = {
        (path, method)
        for path, item in openapi_document()["paths"].items()
        for method in item if method != "parameters"
    }
    assert served == described


async def test_store_failure_is_503_not_500(client: httpx.AsyncClient, tmp_path: Path) -> None:
    from taskless.server.store import StoreUnavailable

    app_store = SQLiteStore(tmp_path / "broken.db")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("disk on fire")

    app_store.get = broken  # type: ignore[method-assign]
    app_store.next_due_at = broken  # type: ignore[method-assign]
    app = create_app(SETTINGS, store=app_store, dispatcher=False)
    async with serving(app) as broken_client:
        response = await broken_client.get(JOB)
        assert response.status_code == 503
        assert error_of(response)["code"] == "unavailable"
        assert (await broken_client.get("/healthz")).status_code == 503


async def test_unexpected_errors_are_json_500(tmp_path: Path) -> None:
    app_store = SQLiteStore(tmp_path / "buggy.db")

    async def buggy(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    app_store.get = buggy  # type: ignore[method-assign]
    app = create_app(SETTINGS, store=app_store, dispatcher=False)
    async with serving(app) as buggy_client:
        response = await buggy_client.get(JOB)
        assert response.status_code == 500
        assert error_of(response)["code"] == "internal"


# -- bad input: numbers JSON cannot carry, names, strict options, messages ------------------------

NON_FINITE = ["1e999", "-1e999", "[-1e999]", '{"a": [1, 1e400]}', "NaN", "Infinity", "[-Infinity]"]


def raw_job(payload: str, **extra: str) -> bytes:
    fields = "".join(f', "{k}": {v}' for k, v in extra.items())
    return f'{{"payload": {payload}, "endpoint": "{ENDPOINT}"{fields}}}'.encode()


@pytest.mark.parametrize("payload", NON_FINITE)
async def test_a_non_finite_number_is_422_naming_payload(
    client: httpx.AsyncClient, payload: str
) -> None:
    for method, path in [("PUT", JOB), ("POST", "/v1/queues/emails/jobs")]:
        response = await client.request(method, path, content=raw_job(payload))
        assert response.status_code == 422
        error = error_of(response)
        assert (error["code"], error["field"]) == ("invalid", "payload")
        assert "JSON numbers must be finite" in error["message"]
    assert (await client.get("/v1/queues/emails/jobs")).json() == {"jobs": []}
    assert (await client.put(JOB, json=job_body())).status_code == 201
    patched = await client.patch(JOB, content=f'{{"payload": {payload}}}'.encode())
    assert patched.status_code == 422
    assert error_of(patched)["field"] == "payload"
    assert (await client.get(JOB)).json()["payload"] == {"to": "a@example.com"}


async def test_a_non_finite_number_in_options_is_422_naming_the_option(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(JOB, content=raw_job("1", options='{"retries": 1e999}'))
    assert response.status_code == 422
    assert error_of(response)["field"] == "options.retries"


async def test_a_non_finite_number_fails_only_its_batch_job(client: httpx.AsyncClient) -> None:
    jobs = ", ".join([
        f'{{"name": "a", "payload": 1, "endpoint": "{ENDPOINT}"}}',
        f'{{"name": "b", "payload": [-1e999], "endpoint": "{ENDPOINT}"}}',
        f'{{"name": "c", "payload": NaN, "endpoint": "{ENDPOINT}"}}',
        f'{{"name": "d", "payload": 4, "endpoint": "{ENDPOINT}"}}',
    ])
    response = await client.post(
        "/v1/queues/emails/jobs:batch", content=f'{{"jobs": [{jobs}]}}'.encode()
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 422, 201]
    assert [r["error"]["field"] for r in results[1:3]] == ["jobs[1].payload", "jobs[2].payload"]
    assert results[1]["error"]["code"] == "invalid"
    names = [j["name"] for j in (await client.get("/v1/queues/emails/jobs")).json()["jobs"]]
    assert names == ["a", "d"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "where"),
    [
        ("PUT", JOB, raw_job(r'"a\ud800b"'), "payload", ""),
        ("POST", "/v1/queues/emails/jobs", raw_job(r'{"k": ["ok", "\udfff"]}'), "payload",
         "at payload.k[1]: "),
        ("PUT", JOB, raw_job("1", options=r'{"headers": {"x-a": "\ud800"}}'), "options.headers",
         "at options.headers.x-a: "),
        ("PUT", JOB, raw_job(r'{"\ud800": 1}'), "payload", "has a key that "),
        ("PUT", JOB, f'{{"payload": 1, "endpoint": "{ENDPOINT}\\ud800"}}'.encode(), "endpoint",
         ""),
        ("PUT", JOB, raw_job("1", **{"\\ud800": "1"}), "body", "has a key that "),
        ("PATCH", JOB, rb'{"payload": "\ud800"}', "payload", ""),
    ],
    ids=["payload", "nested", "header", "payload-key", "endpoint", "top-level-key", "patch"],
)
async def test_a_lone_surrogate_is_422_naming_where_it_is(
    client: httpx.AsyncClient, method: str, path: str, body: bytes, field: str, where: str
) -> None:
    assert (await client.put(JOB, json=job_body())).status_code == 201
    response = await client.request(method, path, content=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid", field)
    assert error["message"].startswith(where + "holds a lone surrogate (\\u")
    assert (await client.get(JOB)).json()["payload"] == {"to": "a@example.com"}
    assert len((await client.get("/v1/queues/emails/jobs")).json()["jobs"]) == 1


async def test_a_lone_surrogate_fails_only_its_batch_job(client: httpx.AsyncClient) -> None:
    jobs = ", ".join([
        f'{{"name": "a", "payload": "\\ud83d\\ude92", "endpoint": "{ENDPOINT}"}}',
        f'{{"name": "b", "payload": "\\ud83d", "endpoint": "{ENDPOINT}"}}',
    ])
    response = await client.post(
        "/v1/queues/emails/jobs:batch", content=f'{{"jobs": [{jobs}]}}'.encode()
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422]
    assert results[0]["job"]["payload"] == "🚒"
    assert results[1]["error"]["field"] == "jobs[1].payload"


async def test_a_5000_digit_number_is_422_saying_it_is_too_long(client: httpx.AsyncClient) -> None:
    response = await client.put(JOB, content=raw_job("9" * 5000))
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "payload"
    assert error["message"] == (
        "a number is too long (5000 digits, at most 4300); send it as a string"
    )


async def test_a_body_that_is_not_utf8_is_422_saying_so(client: httpx.AsyncClient) -> None:
    response = await client.put(JOB, content=b'\xff\xfe{"payload": 1}')
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "body"
    assert error["message"].startswith("must be UTF-8 JSON")


@pytest.mark.parametrize(
    ("queue", "name", "field"),
    [("emails", "%25", "name"), ("caf%C3%A9", "a", "queue"), ("emails", "-abc", "name"),
     ("emails", "caf%C3%A9", "name"), ("-q", "a", "queue"), ("emails", "a%20b", "name")],
)
async def test_names_the_client_refuses_are_refused(
    client: httpx.AsyncClient, queue: str, name: str, field: str
) -> None:
    from taskless.core.names import validate_name

    response = await client.put(f"/v1/queues/{queue}/jobs/{name}", json=job_body())
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == field
    decoded = {"queue": queue, "name": name}[field]
    with pytest.raises(ValueError) as client_side:
        validate_name(httpx.URL("/" + decoded).path[1:], field=field)
    assert f"{field}: {error['message']}" == str(client_side.value)
    assert (await client.get("/v1/queues/emails/jobs")).json() == {"jobs": []}


async def test_a_bad_name_in_a_batch_fails_that_job(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/queues/emails/jobs:batch", json={"jobs": [
        {"name": "-abc", "payload": 1, "endpoint": ENDPOINT},
        {"name": "ok", "payload": 1, "endpoint": ENDPOINT},
    ]})
    results = response.json()["results"]
    assert [r["status"] for r in results] == [422, 201]
    assert results[0]["error"]["field"] == "jobs[0].name"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"retries": "3"}, "options.retries"), ({"retries": True}, "options.retries"),
     ({"enabled": "yes"}, "options.enabled"), ({"enabled": 1}, "options.enabled"),
     ({"runEvery": "P1D "}, "options.run_every"), ({"runAt": "2024-03-02T09:00Z "},
                                                    "options.run_at"),
     ({"runAt": "2024-03-02T09:00+25:00"}, "options.run_at"),
     ({"runAt": "2024-03-02T09:00Z", "run_at": "2024-03-02T09:00Z"}, "options.run_at"),
     ({"colour": "red"}, "options.colour")],
)
async def test_loose_options_are_422(
    client: httpx.AsyncClient, options: dict[str, Any], field: str
) -> None:
    response = await client.put(JOB, json=job_body(**options))
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid", field)
    assert (await client.get(JOB)).status_code == 404
    await client.put(JOB, json=job_body())
    patched = await client.patch(JOB, json={"options": options})
    assert patched.status_code == 422
    assert error_of(patched)["field"] == field
    assert (await client.get(JOB)).json()["options"]["retries"] == 5
    await client.delete(JOB)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"runAt": "2024-03-02T09:00+25:00"}, "the UTC offset must be between -23:59 and +23:59"),
     ({"runAt": "2024-03-02T09:00Z", "run_at": "2024-03-02T09:00Z"},
      "the option run_at is given twice, as 'runAt' and as 'run_at'; give only one of them"),
     ({"colour": "red"}, (
         "'colour' is not a job option; the options are enabled, headers, "
         "retries, run_at (or runAt), run_every (or runEvery), timezone")),
     ({"headers": {"x-big": "a" * 100_000}},
      "the value of 'x-big' is too long (100000 characters; at most 8192)")],
)
async def test_option_messages_say_what_to_fix(
    client: httpx.AsyncClient, options: dict[str, Any], message: str
) -> None:
    response = await client.put(JOB, json=job_body(**options))
    assert response.status_code == 422
    assert message in error_of(response)["message"]
    assert "Extra inputs" not in error_of(response)["message"]


async def test_credentials_in_the_endpoint_are_422_saying_so(client: httpx.AsyncClient) -> None:
    response = await client.put(
        JOB, json={"payload": 1, "endpoint": "http://user:pw@127.0.0.1/jobs"}
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "endpoint"
    assert error["message"].startswith("credentials in URLs are not allowed")


async def test_development_refusal_says_how_to_allow_an_endpoint(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(JOB, json={"payload": 1, "endpoint": "https://app.example.com/x"})
    assert response.status_code == 422
    message = error_of(response)["message"]
    assert "in development only loopback endpoints are allowed" in message
    assert "TASKLESS_ALLOWED_ENDPOINTS=https://app.example.com/" in message
    assert "none" not in message


async def test_openapi_says_a_bad_batch_job_does_not_sink_the_others(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    batch = document["paths"]["/v1/queues/{queue}/jobs:batch"]["post"]
    text = batch["summary"] + " " + batch["description"]
    assert "transaction" not in text
    assert "does not sink the others" in text


async def test_a_name_with_a_plus_is_kept_as_it_is(client: httpx.AsyncClient) -> None:
    path = "/v1/queues/emails/jobs/welcome:ada+news@example.com"
    created = await client.put(path, json=job_body())
    assert created.status_code == 201
    assert created.json()["name"] == "welcome:ada+news@example.com"
    assert (await client.get(path)).json()["name"] == "welcome:ada+news@example.com"
    assert (await client.get("/v1/queues/emails/jobs/welcome:ada news@example.com")).status_code == 422
