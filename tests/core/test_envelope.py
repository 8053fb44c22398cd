from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskless.core.envelope import (
    EncryptedPayload,
    Envelope,
    build_envelope,
    parse_envelope,
)
from taskless.core.errors import ValidationError

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
