from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskless.core.envelope import (
    PROTECTED_HEADERS,
    EncryptedPayload,
    Envelope,
    build_envelope,
    delivery_headers,
    parse_envelope,
)
from taskless.core.errors import ConfigurationError, ValidationError
from taskless.core.signing import Verifier

AT = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
PAYLOAD = {
    "city": "Zürich",
    "tag": "🚒",
    "sep": "a\u2028b",
    "price": 10.5,
    "n": 12345678901234567890,
    "nested": [None, True, {"x": -1}],
}


def envelope_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": 1,
        "queue": "emails",
        "job": "welcome",
        "attempt": 1,
        "scheduledAt": "2024-03-01T09:30:00Z",
        "payload": {"to": "a@example.com"},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()


def raw(data: Any) -> bytes:
    return json.dumps(data).encode()


def test_build_is_compact_utf8_json_in_protocol_order() -> None:
    body = build_envelope("emails", "welcome", 2, AT, {"city": "Zürich"})
    assert body == (
        '{"v":1,"queue":"emails","job":"welcome","attempt":2,'
        '"scheduledAt":"2024-03-01T09:30:00Z","payload":{"city":"Zürich"}}'
    ).encode()


def test_scheduled_at_is_sent_in_utc() -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    body = json.loads(build_envelope("q", "j", 1, paris, None))
    assert body["scheduledAt"] == "2024-03-01T09:30:00Z"


def test_round_trip_keeps_values_exact() -> None:
    envelope = parse_envelope(build_envelope("emails", "welcome", 3, AT, PAYLOAD))
    assert envelope == Envelope("emails", "welcome", 3, AT, PAYLOAD)
    assert type(envelope.payload["n"]) is int
    assert envelope.payload["n"] == 12345678901234567890
    assert type(envelope.payload["price"]) is float
    assert envelope.scheduled_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("payload", [None, 0, "text", [1, 2], {"a": {}}, 1.5e300])
def test_any_json_value_is_a_payload(payload: Any) -> None:
    assert parse_envelope(build_envelope("q", "j", 1, AT, payload)).payload == payload


def test_null_payload_is_not_missing() -> None:
    assert parse_envelope(raw(envelope_dict(payload=None))).payload is None


def test_unknown_keys_are_ignored() -> None:
    envelope = parse_envelope(raw(envelope_dict(runId="run_1", future={"x": 1})))
    assert envelope.job == "welcome"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1, 2}, object(), b"bytes"])
def test_build_refuses_what_is_not_json(bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        build_envelope("q", "j", 1, AT, {"x": bad})
    assert info.value.field == "payload"


def test_build_refuses_lone_surrogates() -> None:
    with pytest.raises(ValidationError) as info:
        build_envelope("q", "j", 1, AT, "\ud800")
    assert info.value.field == "payload"


def test_build_refuses_naive_datetime() -> None:
    with pytest.raises(ValidationError):
        build_envelope("q", "j", 1, AT.replace(tzinfo=None), {})


def test_encrypted_form_round_trips() -> None:
    secret = EncryptedPayload(alg="A256GCM", kid="k1", iv="aXY=", data="ZGF0YQ==")
    body = build_envelope("q", "j", 1, AT, {"ignored": True}, encrypted=secret)
    assert b"payload" not in body
    envelope = parse_envelope(body)
    assert envelope.encrypted == secret
    assert envelope.payload is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"\xff\xfe{}", "body"),
        ('{"v":1}'.encode("utf-16"), "body"),
        (b"", "body"),
        (b"not json", "body"),
        (b'{"v":1,', "body"),
        (b"[1,2]", "body"),
        (b'"a string"', "body"),
        (b"\xef\xbb\xbf{}", "body"),  # a UTF-8 byte order mark is not JSON
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b'{"n":' + b"9" * 5000 + b"}", "body"),  # beyond Python's int-string limit
        (b'{"v":1,"payload":NaN}', "body"),
        (raw(envelope_dict(v=_DROP)), "v"),
        (raw(envelope_dict(v="1")), "v"),
        (raw(envelope_dict(v=True)), "v"),
        (raw(envelope_dict(v=2)), "v"),
        (raw(envelope_dict(queue=_DROP)), "queue"),
        (raw(envelope_dict(queue="")), "queue"),
        (raw(envelope_dict(queue=["emails"])), "queue"),
        (raw(envelope_dict(job=None)), "job"),
        (raw(envelope_dict(attempt=0)), "attempt"),
        (raw(envelope_dict(attempt=1.0)), "attempt"),
        (raw(envelope_dict(attempt=True)), "attempt"),
        (raw(envelope_dict(attempt="1")), "attempt"),
        (raw(envelope_dict(scheduledAt=_DROP)), "scheduledAt"),
        (raw(envelope_dict(scheduledAt=1709285400)), "scheduledAt"),
        (raw(envelope_dict(scheduledAt="2024-03-01T09:30:00")), "scheduledAt"),
        (raw(envelope_dict(scheduledAt="yesterday")), "scheduledAt"),
        (raw(envelope_dict(scheduledAt="2024-02-30T00:00:00Z")), "scheduledAt"),
        (raw(envelope_dict(payload=_DROP)), "payload"),
        (raw(envelope_dict(encrypted={"alg": "A256GCM"})), "payload"),
        (raw(envelope_dict(payload=_DROP, encrypted={"alg": "A256GCM"})), "encrypted"),
        (raw(envelope_dict(payload=_DROP, encrypted="x")), "encrypted"),
    ],
)
def test_parse_refuses_malformed_bodies_cleanly(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_envelope(body)
    assert info.value.field == field


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_delivery_headers_order_signature_and_job_headers() -> None:
    body = build_envelope("emails", "welcome", 2, AT, {"to": "a@example.com"})
    job_headers = {"X-Tenant": "acme", "Content-Type": "text/plain", "WEBHOOK-ID": "forged",
                   "x-taskless-attempt": "9", "Host": "evil", "authorization": "Bearer t"}
    headers = delivery_headers(
        "run_1", 1_700_000_000, body, [SECRET], queue="emails", job="welcome", attempt=2,
        job_headers=job_headers, version="1.2.3",
    )
    assert list(headers) == [
        "content-type", "user-agent", "X-Tenant", "authorization", "webhook-id",
        "webhook-timestamp", "webhook-signature", "x-taskless-queue", "x-taskless-job",
        "x-taskless-attempt",
    ]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "taskless/1.2.3"
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == ("run_1", "1700000000")
    assert (headers["x-taskless-queue"], headers["x-taskless-job"],
            headers["x-taskless-attempt"]) == ("emails", "welcome", "2")
    Verifier([SECRET], clock=lambda: 1_700_000_000).verify(headers, body)


def test_delivery_headers_one_signature_per_secret() -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUA=="
    headers = delivery_headers(
        "run_1", 1_700_000_000, b"{}", [SECRET, other], queue="q", job="j", attempt=1,
        job_headers={}, version="0",
    )
    assert len(headers["webhook-signature"].split()) == 2
    Verifier([other], clock=lambda: 1_700_000_000).verify(headers, b"{}")


def test_delivery_headers_unsigned_and_without_secret() -> None:
    headers = delivery_headers(
        "run_1", None, b"", [], queue="q", job="j", attempt=1, job_headers={"x-a": "1"},
        version="0",
    )
    assert "webhook-timestamp" not in headers and "webhook-signature" not in headers
    assert list(headers) == ["content-type", "user-agent", "x-a", "webhook-id",
                             "x-taskless-queue", "x-taskless-job", "x-taskless-attempt"]
    with pytest.raises(ConfigurationError):
        delivery_headers("run_1", 1, b"", [], queue="q", job="j", attempt=1, job_headers={},
                         version="0")


def test_protected_headers_are_lower_case() -> None:
    assert all(name == name.lower() for name in PROTECTED_HEADERS)
