from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskless.core import api
from taskless.core.engine import UNSET
from taskless.core.errors import JobNotFound, ValidationError
from taskless.core.models import JobState

T0 = datetime(2024, 3, 1, tzinfo=UTC)
LOOPBACK = api.EndpointPolicy(allow_loopback=True)
ENDPOINT = "http://127.0.0.1:8000/jobs"

BAD_RUN_EVERY = [
    "P", "PT", "PD", "P1DT", "1D", "", "P12M4M", "P1.5M", "P0.5D", "PT1.5H30M",
    "PT999999999999999999999999S", "P0D", "-P1D", "P1M-30D",
]


def body(**options: object) -> dict[str, object]:
    return {"payload": {"a": 1}, "endpoint": ENDPOINT, "options": options}


def test_parse_job_input_accepts_camel_and_snake_case() -> None:
    camel = api.parse_job_input(body(runAt="2024-03-01T10:00:00+02:00", runEvery="P1D"), LOOPBACK)
    snake = api.parse_job_input(body(run_at="2024-03-01T10:00:00+02:00", run_every="P1D"), LOOPBACK)
    assert camel.options == snake.options
    assert camel.options.run_every == "P1D"
    assert camel.payload == {"a": 1}


@pytest.mark.parametrize("run_every", BAD_RUN_EVERY)
def test_bad_run_every_names_the_field(run_every: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(runEvery=run_every), LOOPBACK)
    assert info.value.field == "options.run_every"
    assert "run_every" in str(info.value)


def test_naive_run_at_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(runAt="2024-03-01T10:00:00"), LOOPBACK)
    assert info.value.field == "options.run_at"
    assert "offset" in info.value.reason


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"retries": -1}, "options.retries"),
        ({"retries": "many"}, "options.retries"),
        ({"timezone": "Mars/Olympus"}, "options.timezone"),
        ({"unknown": 1}, "options.unknown"),
        ({"headers": {"webhook-id": "x"}}, "options.headers"),
        ({"headers": {"bad name": "x"}}, "options.headers"),
        ({"headers": {"x-a": "line\r\nbreak"}}, "options.headers"),
        ({"headers": {"content-type": "text/plain"}}, "options.headers"),
        ({"headers": {"X-Taskless-Job": "x"}}, "options.headers"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input({"payload": 1, "endpoint": ENDPOINT, "options": options}, LOOPBACK)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "body"),
        ({"endpoint": ENDPOINT}, "payload"),
        ({"payload": 1}, "endpoint"),
        ({"payload": 1, "endpoint": ENDPOINT, "extra": 1}, "extra"),
        ({"payload": 1, "endpoint": ENDPOINT, "options": []}, "options"),
        ({"payload": 1, "encrypted": {}, "endpoint": ENDPOINT}, "payload"),
        ({"encrypted": {"alg": "A256GCM"}, "endpoint": ENDPOINT}, "encrypted"),
    ],
)
def test_bad_bodies_name_the_field(data: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(data, LOOPBACK)
    assert info.value.field == field


def test_null_payload_is_a_payload() -> None:
    assert api.parse_job_input({"payload": None, "endpoint": ENDPOINT}, LOOPBACK).payload is None


def test_encrypted_payload() -> None:
    encrypted = {"alg": "A256GCM", "kid": "k1", "iv": "aXY=", "data": "ZGF0YQ=="}
    job = api.parse_job_input({"encrypted": encrypted, "endpoint": ENDPOINT}, LOOPBACK)
    record = api.apply_put(None, "q", "n", job, T0)
    wire = api.render_job(record)
    assert wire["encrypted"] == encrypted
    assert "payload" not in wire


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"{'a': 1}", b"[1,", b"\xff\xfe", b'{"a": NaN}', b'{"a": Infinity}']
)
def test_malformed_json(raw: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_json_body(raw)
    assert info.value.field == "body"


def test_too_large_body() -> None:
    with pytest.raises(ValidationError):
        api.parse_json_body(b" " * (api.MAX_BODY_BYTES + 1))


# -- endpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8000/jobs",
        "http://127.9.9.9/x",
        "https://localhost/x",
        "http://LOCALHOST:3000/",
        "http://[::1]:8000/jobs",
    ],
)
def test_development_allows_loopback(endpoint: str) -> None:
    assert LOOPBACK.check(endpoint) == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://10.0.0.1/x",
        "http://example.com/jobs",
        "ftp://127.0.0.1/x",
        "127.0.0.1:8000/jobs",
        "http://user:pw@127.0.0.1/x",
        "http://127.0.0.1 /x",
        "",
        42,
    ],
)
def test_development_refuses_others(endpoint: object) -> None:
    with pytest.raises(ValidationError) as info:
        LOOPBACK.check(endpoint)
    assert info.value.field == "endpoint"


@pytest.mark.parametrize(
    ("endpoint", "allowed"),
    [
        ("https://app.example.com/jobs/emails", True),
        ("https://app.example.com/jobs", True),
        ("https://APP.example.com:443/jobs/x", True),
        ("https://app.example.com/jobs-admin", False),
        ("https://app.example.com.evil.net/jobs/x", False),
        ("http://app.example.com/jobs/x", False),
        ("https://app.example.com:8443/jobs/x", False),
        ("https://app.example.com/other", False),
        ("http://127.0.0.1/jobs", False),  # production: no loopback unless listed
        ("https://api.example.com/anything", True),
    ],
)
def test_production_prefixes(endpoint: str, allowed: bool) -> None:
    policy = api.EndpointPolicy(("https://app.example.com/jobs", "https://api.example.com/"))
    if allowed:
        assert policy.check(endpoint) == endpoint
    else:
        with pytest.raises(ValidationError) as info:
            policy.check(endpoint)
        assert info.value.field == "endpoint"
        assert "TASKLESS_ALLOWED_ENDPOINTS" in info.value.reason


def test_invalid_prefix_setting() -> None:
    with pytest.raises(ValidationError):
        api.EndpointPolicy(("not a url",))


# -- patch ------------------------------------------------------------------------------------


def test_patch_body_keeps_unset_fields_unset() -> None:
    patch = api.parse_job_patch({"options": {"retries": 2}}, LOOPBACK)
    assert patch.payload is UNSET
    assert patch.endpoint is UNSET
    assert patch.options is not None
    assert patch.options.model_fields_set == {"retries"}


def test_apply_patch_of_missing_job_raises_not_found() -> None:
    with pytest.raises(JobNotFound):
        api.apply_patch(None, "q", "n", api.parse_job_patch({}, LOOPBACK), T0)


def test_apply_patch_checks_the_merged_schedule() -> None:
    record = api.apply_put(None, "q", "n", api.parse_job_input(body(runEvery="P1M"), LOOPBACK), T0)
    with pytest.raises(ValidationError) as info:
        api.apply_patch(
            record, "q", "n", api.parse_job_patch({"options": {"runEvery": "P1M-30D"}}, LOOPBACK),
            T0,
        )
    assert info.value.field == "options.run_every"


# -- rendering --------------------------------------------------------------------------------


def test_render_job_wire_format() -> None:
    job = api.parse_job_input(
        body(runAt="2024-03-01T10:00:00.5+02:00", runEvery="P1D", headers={"x-a": "b"}),
        LOOPBACK,
    )
    record = api.apply_put(None, "emails", "welcome", job, T0)
    assert api.render_job(record) == {
        "id": record.id,
        "queue": "emails",
        "name": "welcome",
        "endpoint": ENDPOINT,
        "payload": {"a": 1},
        "options": {
            "enabled": True,
            "headers": {"x-a": "b"},
            "retries": 5,
            "runAt": "2024-03-01T10:00:00.500000+02:00",
            "runEvery": "P1D",
            "timezone": None,
        },
        "state": "scheduled",
        "nextRunAt": "2024-03-01T08:00:00.500000Z",
        "createdAt": "2024-03-01T00:00:00Z",
        "updatedAt": "2024-03-01T00:00:00Z",
    }


def test_render_error() -> None:
    assert api.render_error(ValidationError("options.run_every", "bad")) == (
        422, {"error": {"code": "invalid", "message": "bad", "field": "options.run_every"}}
    )
    status, body_ = api.render_error(JobNotFound("q", "n"))
    assert status == 404
    assert body_["error"]["code"] == "not_found"
    assert "field" not in body_["error"]


def test_batch_keeps_order_and_isolates_errors() -> None:
    results = api.parse_batch(
        {"jobs": [
            {"payload": 1, "endpoint": ENDPOINT},
            {"payload": 1, "endpoint": ENDPOINT, "options": {"runEvery": "P"}},
            {"name": "named", "payload": 1, "endpoint": ENDPOINT},
        ]},
        LOOPBACK,
    )
    assert isinstance(results[0], api.JobInput)
    assert isinstance(results[1], ValidationError)
    assert results[1].field == "jobs[1].options.run_every"
    assert isinstance(results[2], api.JobInput)
    assert results[2].name == "named"


def test_batch_limit() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_batch({"jobs": [{}] * (api.MAX_BATCH + 1)}, LOOPBACK)
    assert info.value.field == "jobs"


@pytest.mark.parametrize("name", ["", "a/b", "a b", "x" * 201, "tab\t"])
def test_bad_path_names(name: str) -> None:
    with pytest.raises(ValidationError):
        api.validate_path_name(name, "name")


def test_put_then_replace_keeps_id() -> None:
    job = api.parse_job_input(body(), LOOPBACK)
    first = api.apply_put(None, "q", "n", job, T0)
    second = api.apply_put(first, "q", "n", job, T0 + timedelta(seconds=1))
    assert second.id == first.id
    assert second.version == 2
    assert second.state is JobState.SCHEDULED


# -- numbers JSON cannot carry, names, messages ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "where"),
    [
        (b'{"payload": 1e999, "endpoint": "x"}', "payload", None),
        (b'{"payload": [-1e999], "endpoint": "x"}', "payload", "payload[0]"),
        (b'{"payload": {"a": {"b": NaN}}}', "payload", "payload.a.b"),
        (b'{"payload": Infinity}', "payload", None),
        (b'{"payload": [1, -Infinity]}', "payload", "payload[1]"),
        (b'{"options": {"retries": 1e999}}', "options.retries", None),
        (b'{"options": {"runAt": NaN}}', "options.run_at", None),
        (b'{"encrypted": {"data": 1e400}}', "encrypted", "encrypted.data"),
        (b"1e999", "body", None),
        (b'{"a": NaN}', "body", "a"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    raw: bytes, field: str, where: str | None
) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_json_body(raw)
    assert info.value.field == field
    assert "JSON numbers must be finite" in info.value.reason
    if where is not None:
        assert info.value.reason.startswith(f"at {where}: ")


def test_an_integer_too_long_to_convert_says_the_number_is_too_long() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_json_body(b'{"payload": {"n": ' + b"9" * 5000 + b"}}")
    assert info.value.field == "payload"
    assert info.value.reason == (
        "at payload.n: a number is too long (5000 digits, at most 4300); send it as a string"
    )
    assert "set_int_max_str_digits" not in str(info.value)


def test_large_finite_numbers_are_fine() -> None:
    data = api.parse_json_body(b'{"payload": [1e308, -1.5e-320, 12345678901234567890]}')
    assert data == {"payload": [1e308, -1.5e-320, 12345678901234567890]}


def test_a_non_finite_number_in_a_batch_fails_only_its_job() -> None:
    raw = (
        b'{"jobs": [{"payload": 1, "endpoint": "%s"}, {"payload": {"x": [1e999]}, '
        b'"endpoint": "%s"}, {"payload": NaN, "endpoint": "%s"}, {"payload": 2, "endpoint": "%s"}]}'
        % (ENDPOINT.encode(), ENDPOINT.encode(), ENDPOINT.encode(), ENDPOINT.encode())
    )
    results = api.parse_batch(api.parse_json_body(raw), LOOPBACK)
    assert isinstance(results[0], api.JobInput) and results[0].payload == 1
    assert isinstance(results[1], ValidationError)
    assert results[1].field == "jobs[1].payload"
    assert results[1].reason.startswith("at payload.x[0]: 1e999 is too large")
    assert isinstance(results[2], ValidationError)
    assert results[2].field == "jobs[2].payload"
    assert isinstance(results[3], api.JobInput) and results[3].payload == 2


def test_a_non_finite_number_outside_the_jobs_fails_the_batch() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_json_body(b'{"jobs": [], "extra": NaN}')
    assert info.value.field == "body"


@pytest.mark.parametrize("raw", [b'\xff\xfe{"payload": 1}', b'{"payload": "caf\xe9"}'])
def test_a_body_that_is_not_utf8_says_so(raw: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_json_body(raw)
    assert info.value.field == "body"
    assert info.value.reason.startswith("must be UTF-8 JSON")
    assert "codec" not in info.value.reason


def test_a_utf8_byte_order_mark_is_skipped() -> None:
    assert api.parse_json_body(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("name", "field"),
    [("%", "name"), ("café", "name"), ("-abc", "name"), ("a b", "name"), ("x" * 201, "name"),
     ("+a", "name"), ("a/b+c", "name"),
     ("q/1", "queue"), ("", "queue")],
)
def test_path_names_follow_the_client_rule(name: str, field: str) -> None:
    from taskless.core.names import validate_name

    with pytest.raises(ValidationError) as server:
        api.validate_path_name(name, field)
    with pytest.raises(ValidationError) as client:
        validate_name(name, field=field)
    assert server.value.field == client.value.field == field
    assert str(server.value) == str(client.value)


@pytest.mark.parametrize(
    "name", ["a", "user:42:welcome", "digest@alice@example.com", "_x.y-z", "welcome:ada+news@x.io"]
)
def test_valid_names_pass(name: str) -> None:
    assert api.validate_path_name(name, "name") == name


def test_a_bad_name_in_a_body_is_refused_with_the_client_message() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input({**body(), "name": "-abc"}, LOOPBACK, allow_name=True)
    assert info.value.field == "name"
    assert "starting with a letter, a digit or _" in info.value.reason


def test_a_header_value_too_long_says_so_and_gives_the_limit() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(headers={"x-a": "a" * 100_000}), LOOPBACK)
    assert info.value.field == "options.headers"
    assert info.value.reason == (
        "the value of 'x-a' is too long (100000 characters; at most 8192); "
        "send large data in the payload"
    )


def test_a_header_name_too_long_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(headers={"x" * 300: "a"}), LOOPBACK)
    assert info.value.field == "options.headers"
    assert "too long (300 characters; at most 256)" in info.value.reason


def test_a_header_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(headers={"x-a": "a\r\nb: c"}), LOOPBACK)
    assert "line break" in info.value.reason


def test_credentials_in_an_endpoint_are_refused_as_such() -> None:
    with pytest.raises(ValidationError) as info:
        LOOPBACK.check("http://user:pw@127.0.0.1/jobs")
    assert info.value.field == "endpoint"
    assert info.value.reason.startswith("credentials in URLs are not allowed")
    assert "pw" not in info.value.reason


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [("ftp://127.0.0.1/x", "is not an http(s) URL"), ("http:///x", "has no host"),
     ("http://127.0.0.1:99999/x", "is not a valid URL"), ("http://a b/", "spaces"),
     ("http://127.0.0.1:0/x", "has port 0, which no server listens on"),
     ("http://127.0.0.1/x#part", "has a fragment ('#...'), which is never sent in a request"),
     ("http://127.0.0.1/x#", "has a fragment")],
)
def test_other_bad_endpoints_say_what_is_wrong(endpoint: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        LOOPBACK.check(endpoint)
    assert words in info.value.reason


def test_the_development_refusal_says_only_loopback_is_allowed_and_how_to_allow_more() -> None:
    with pytest.raises(ValidationError) as info:
        LOOPBACK.check("https://app.example.com/jobs")
    assert info.value.reason == (
        "'https://app.example.com/jobs' is not an allowed endpoint: in development only "
        "loopback endpoints are allowed; to allow it, set "
        "TASKLESS_ALLOWED_ENDPOINTS=https://app.example.com/ (a comma list of URL prefixes) "
        "on the job server"
    )


def test_the_production_refusal_lists_the_allowed_prefixes() -> None:
    policy = api.EndpointPolicy(("https://app.example.com/jobs/",))
    with pytest.raises(ValidationError) as info:
        policy.check("https://other.example.com:8443/x")
    assert "deliveries may only go under https://app.example.com/jobs/;" in info.value.reason
    assert "TASKLESS_ALLOWED_ENDPOINTS=https://other.example.com:8443/ " in info.value.reason


@pytest.mark.parametrize(
    ("options", "field"),
    [({"retries": "3"}, "options.retries"), ({"retries": True}, "options.retries"),
     ({"retries": 3.0}, "options.retries"), ({"enabled": "yes"}, "options.enabled"),
     ({"enabled": 1}, "options.enabled"), ({"runEvery": "P1D "}, "options.run_every"),
     ({"run_every": " P1D"}, "options.run_every"),
     ({"runAt": " 2024-03-01T00:00Z"}, "options.run_at"),
     ({"runAt": "2024-03-01T00:00Z", "run_at": "2024-03-01T00:00Z"}, "options.run_at"),
     ({"runEvery": "P1D", "run_every": "P1D"}, "options.run_every"),
     ({"foo": 1}, "options.foo"), ({"runAt": "2024-03-01T00:00+25:00"}, "options.run_at")],
)
def test_options_are_strict(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(**options), LOOPBACK)
    assert info.value.field == field
    with pytest.raises(ValidationError):
        api.parse_job_patch({"options": options}, LOOPBACK)


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b'{"payload": NaN, "endpoint": }', "is not valid JSON"),
     (b'{"payload": 1e999, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
      "is nested too deeply")],
)
def test_a_bad_number_then_a_broken_body_is_about_the_body(raw: bytes, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_json_body(raw)
    assert info.value.field == "body"
    assert words in info.value.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"x-a": "héllo"}, ("the value of 'x-a' is not ASCII text: receivers would read its bytes "
                           "in another encoding; send such text in the payload, or percent-encode it")),
        ({"X-A": "1", "x-a": "2"}, ("'X-A' and 'x-a' are the same header (names are not "
                                   "case-sensitive); give it once")),
    ],
    ids=["non-ascii-value", "same-name-twice"],
)
def test_headers_a_receiver_would_not_see_as_sent_are_refused(
    headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_job_input(body(headers=headers), LOOPBACK)
    assert (info.value.field, info.value.reason) == ("options.headers", reason)


@pytest.mark.parametrize("value", ["0", "1001", "-1", "abc", "٣", "1.5", " 5"])
def test_a_limit_is_an_ascii_integer_from_1_to_1000(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse_limit(value)
    assert (info.value.field, info.value.reason) == ("limit", "must be an integer from 1 to 1000")


def test_limit_defaults_and_bounds() -> None:
    assert (api.parse_limit(None), api.parse_limit(""), api.parse_limit("1"),
            api.parse_limit("1000")) == (100, 100, 1, 1000)


def test_the_name_rule_message_lists_every_allowed_character() -> None:
    with pytest.raises(ValidationError) as info:
        api.validate_path_name("bad name", "name")
    assert str(info.value) == (
        "name: 'bad name' is not allowed: use ASCII letters, digits and _ - . : @ +, "
        "starting with a letter, a digit or _"
    )
