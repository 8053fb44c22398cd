"""The receiver contract: every framework integration answers deliveries the same way.

Each case runs once per harness of ``conftest.FRAMEWORKS`` (Starlette, FastAPI, ...).
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.crypto import PayloadCipher
from taskless.core.envelope import EncryptedPayload, build_envelope
from taskless.core.errors import RetryLater
from taskless.core.models import JobMeta
from taskless.core.receiver import DEFAULT_MAX_BODY_BYTES
from taskless.core.signing import signed_headers

from .conftest import (
    ENCRYPTION_KEY,
    NOW,
    PREVIOUS_ENCRYPTION_KEY,
    PREVIOUS_SECRET,
    SECRET,
    Harness,
    Reply,
)

AT = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
OTHER_SECRET = "whsec_c29tZW9uZS1lbHNl"
PAYLOAD = {
    "city": "Zürich", "tag": "🚒", "sep": "a\u2028b", "price": 10.5, "n": 12345678901234567890
}


class Order(BaseModel):
    id: int
    email: str


def body_for(queue: str, payload: Any = PAYLOAD, *, job: str = "job-1", attempt: int = 1) -> bytes:
    return build_envelope(queue, job, attempt, AT, payload)


def post(
    harness: Harness,
    queue: str,
    payload: Any = PAYLOAD,
    *,
    body: bytes | None = None,
    path: str | None = None,
    secret: str | list[str] = SECRET,
    timestamp: int = NOW,
    run_id: str = "run_contract",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Reply:
    body = body_for(queue, payload) if body is None else body
    if headers is None:
        headers = signed_headers(body, secret, msg_id=run_id, timestamp=timestamp)
    return harness.request(method, path or f"/api/queues/{queue}", headers=headers, body=body)


class Calls:
    """A handler that records its calls; ``sync`` or ``async`` flavour."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, JobMeta]] = []

    def sync(self, payload: Any, meta: JobMeta) -> dict[str, str]:
        self.calls.append((payload, meta))
        return {"handled": meta.run_id}

    async def async_(self, payload: Any, meta: JobMeta) -> dict[str, str]:
        await asyncio.sleep(0)
        return self.sync(payload, meta)


@pytest.fixture
def calls(harness: Harness) -> Calls:
    recorder = Calls()
    harness.queue("emails")(recorder.sync)
    return recorder


def error_code(reply: Reply) -> str:
    code: str = reply.json()["error"]["code"]
    return code


# --- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_valid_delivery_reaches_the_handler_exactly(harness: Harness, flavour: str) -> None:
    recorder = Calls()
    harness.queue("emails")(recorder.sync if flavour == "sync" else recorder.async_)
    body = body_for("emails", job="welcome-42", attempt=2)
    reply = post(harness, "emails", body=body, run_id="run_123")
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"ok": True, "result": {"handled": "run_123"}}
    [(payload, meta)] = recorder.calls
    assert payload == PAYLOAD
    assert type(payload["n"]) is int and payload["n"] == 12345678901234567890
    assert type(payload["price"]) is float and payload["price"] == 10.5
    assert payload["sep"] == "a\u2028b" and payload["tag"] == "🚒"
    assert meta.queue == "emails"
    assert meta.name == "welcome-42"
    assert meta.run_id == "run_123"
    assert meta.attempt == 2
    assert meta.scheduled_at == AT
    assert meta.headers["webhook-id"] == "run_123"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_typed_payload_reaches_the_handler_as_a_model(harness: Harness, flavour: str) -> None:
    received: list[Order] = []

    def sync_handler(payload: Order) -> int:
        received.append(payload)
        return payload.id

    async def async_handler(payload: Order) -> int:
        return sync_handler(payload)

    harness.queue("orders")(sync_handler if flavour == "sync" else async_handler)
    reply = post(harness, "orders", {"id": 7, "email": "ada@example.com"})
    assert (reply.status, reply.json()) == (200, {"ok": True, "result": 7})
    assert received == [Order(id=7, email="ada@example.com")]


@pytest.mark.parametrize("key", [ENCRYPTION_KEY, PREVIOUS_ENCRYPTION_KEY],
                         ids=["current-key", "previous-key"])
def test_an_encrypted_payload_reaches_the_handler_decrypted(
    harness: Harness, calls: Calls, key: str
) -> None:
    encrypted = EncryptedPayload(**PayloadCipher(key).encrypt(PAYLOAD, "emails"))
    body = build_envelope("emails", "job-1", 1, AT, None, encrypted=encrypted)
    reply = post(harness, "emails", body=body)
    assert reply.status == 200, reply.body
    assert [payload for payload, _ in calls.calls] == [PAYLOAD]


def test_a_payload_encrypted_with_an_unknown_key_is_422(harness: Harness, calls: Calls) -> None:
    unknown = base64.b64encode(b"an-encryption-key-nobody-has-set").decode()
    encrypted = EncryptedPayload(**PayloadCipher(unknown).encrypt(PAYLOAD, "emails"))
    body = build_envelope("emails", "job-1", 1, AT, None, encrypted=encrypted)
    reply = post(harness, "emails", body=body)
    assert (reply.status, error_code(reply)) == (422, "encrypted_payload")
    assert calls.calls == []


def test_signature_by_a_previous_secret_is_accepted(harness: Harness, calls: Calls) -> None:
    assert post(harness, "emails", secret=PREVIOUS_SECRET).status == 200
    assert post(harness, "emails", secret=[OTHER_SECRET, SECRET]).status == 200
    assert len(calls.calls) == 2


@pytest.mark.parametrize("offset", [-299, 299])
def test_timestamp_inside_the_window_is_accepted(
    harness: Harness, calls: Calls, offset: int
) -> None:
    assert post(harness, "emails", timestamp=NOW + offset).status == 200


def test_header_names_are_case_insensitive(harness: Harness, calls: Calls) -> None:
    body = body_for("emails")
    headers = signed_headers(body, SECRET, msg_id="run_case", timestamp=NOW)
    shouted = {
        "WEBHOOK-ID": headers["webhook-id"],
        "Webhook-Timestamp": headers["webhook-timestamp"],
        "webhook-SIGNATURE": headers["webhook-signature"],
        "Content-Type": "application/json",
    }
    assert post(harness, "emails", body=body, headers=shouted).status == 200
    assert calls.calls[0][1].run_id == "run_case"


# --- refused ---------------------------------------------------------------------------------


def test_tampered_body_is_401_and_handler_not_called(harness: Harness, calls: Calls) -> None:
    body = body_for("emails")
    headers = signed_headers(body, SECRET, timestamp=NOW)
    tampered = body.replace(b"Z\xc3\xbcrich", b"Geneva")
    reply = harness.request("POST", "/api/queues/emails", headers=headers, body=tampered)
    assert reply.status == 401
    assert error_code(reply) == "bad_signature"
    assert calls.calls == []


def test_unknown_secret_is_401(harness: Harness, calls: Calls) -> None:
    assert post(harness, "emails", secret=OTHER_SECRET).status == 401
    assert calls.calls == []


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_outside_the_window_is_401(harness: Harness, calls: Calls, offset: int) -> None:
    assert post(harness, "emails", timestamp=NOW + offset).status == 401
    assert calls.calls == []


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("problem", ["missing", "empty", "garbled"])
def test_missing_or_garbled_signature_headers_are_401(
    harness: Harness, calls: Calls, name: str, problem: str
) -> None:
    body = body_for("emails")
    headers = signed_headers(body, SECRET, timestamp=NOW)
    if problem == "missing":
        del headers[name]
    elif problem == "empty":
        headers[name] = ""
    else:
        headers[name] = {
            "webhook-id": "run with spaces",
            "webhook-timestamp": "yesterday",
            "webhook-signature": "v1,!!not base64!! v1," + "A" * 10_000,
        }[name]
    reply = post(harness, "emails", body=body, headers=headers)
    assert reply.status == 401
    assert error_code(reply) == "bad_signature"
    assert calls.calls == []


def test_body_for_another_queue_is_refused(harness: Harness, calls: Calls) -> None:
    other = Calls()
    harness.queue("refunds")(other.sync)
    reply = post(harness, "emails", body=body_for("refunds"))
    assert reply.status in (401, 404)
    assert calls.calls == [] and other.calls == []


def test_unknown_queue_is_404(harness: Harness, calls: Calls) -> None:
    reply = post(harness, "nope")
    assert reply.status == 404
    assert error_code(reply) == "not_found"


def test_payload_failing_the_model_is_422_naming_the_field(harness: Harness) -> None:
    received: list[Order] = []

    def handler(payload: Order) -> None:
        received.append(payload)

    harness.queue("orders")(handler)
    reply = post(harness, "orders", {"id": "seven", "email": "ada@example.com"})
    assert reply.status == 422
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", "payload.id")
    assert received == []


@pytest.mark.parametrize(
    "body", [b"not json", b"\xff\xfe\xfd", b"[]", b'{"v":1,"queue":"emails"}', b"[" * 100_000]
)
def test_signed_malformed_body_is_a_clean_4xx(harness: Harness, calls: Calls, body: bytes) -> None:
    reply = post(harness, "emails", body=body)
    assert 400 <= reply.status < 500
    assert "error" in reply.json()
    assert calls.calls == []


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_handler_raising_is_500_without_the_traceback(harness: Harness, flavour: str) -> None:
    def sync_handler(payload: Any) -> None:
        raise RuntimeError("secret detail")

    async def async_handler(payload: Any) -> None:
        sync_handler(payload)

    harness.queue("emails")(sync_handler if flavour == "sync" else async_handler)
    reply = post(harness, "emails")
    assert reply.status == 500
    assert error_code(reply) == "handler_error"
    assert b"secret detail" not in reply.body and b"Traceback" not in reply.body


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_retry_later_is_503_with_retry_after(harness: Harness, flavour: str) -> None:
    def sync_handler(payload: Any) -> None:
        raise RetryLater(30)

    async def async_handler(payload: Any) -> None:
        sync_handler(payload)

    harness.queue("emails")(sync_handler if flavour == "sync" else async_handler)
    reply = post(harness, "emails")
    assert reply.status == 503
    assert reply.headers["retry-after"] == "30"
    assert error_code(reply) == "retry_later"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(harness: Harness, calls: Calls, method: str) -> None:
    reply = post(harness, "emails", method=method)
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    assert calls.calls == []


# --- paths, sizes, declarations ----------------------------------------------------------------


def test_a_trailing_slash_is_the_same_route(harness: Harness, calls: Calls) -> None:
    reply = post(harness, "emails", path="/api/queues/emails/")
    assert (reply.status, reply.headers["content-type"]) == (200, "application/json")
    assert reply.json() == {"ok": True, "result": {"handled": "run_contract"}}
    unknown = post(harness, "nope", path="/api/queues/nope/")
    assert (unknown.status, error_code(unknown)) == (404, "not_found")
    assert len(calls.calls) == 1


def padded_body(queue: str, size: int) -> bytes:
    """A delivery envelope of exactly ``size`` bytes."""
    empty = body_for(queue, {"pad": ""})
    body = body_for(queue, {"pad": "x" * (size - len(empty))})
    assert len(body) == size
    return body


def test_a_body_at_the_size_limit_is_delivered(harness: Harness, calls: Calls) -> None:
    reply = post(harness, "emails", body=padded_body("emails", DEFAULT_MAX_BODY_BYTES))
    assert reply.status == 200, reply.body[:200]
    assert len(calls.calls) == 1


def test_a_body_over_the_size_limit_is_413_and_the_handler_not_called(
    harness: Harness, calls: Calls
) -> None:
    reply = post(harness, "emails", body=padded_body("emails", DEFAULT_MAX_BODY_BYTES + 1))
    assert reply.status == 413
    assert reply.headers["content-type"] == "application/json"
    assert error_code(reply) == "too_large"
    assert str(DEFAULT_MAX_BODY_BYTES) in reply.json()["error"]["message"]
    assert calls.calls == []


def test_decorator_misuse_is_a_type_error_at_declaration(harness: Harness) -> None:
    def send_email(payload: Any) -> None: ...

    with pytest.raises(TypeError, match=r'@taskless\.queue\("emails"\)') as bare:
        harness.queue(send_email)  # type: ignore[arg-type]  # @taskless.queue, no parentheses
    assert "send_email" in str(bare.value)
    with pytest.raises(TypeError, match=r'not int 5: use @taskless\.queue\("emails"\)'):
        harness.queue(5)  # type: ignore[arg-type]
    for handler, shown in [(42, "int 42"), (None, "None"), (int, "the class int")]:
        with pytest.raises(TypeError) as info:
            harness.queue("emails")(handler)
        assert str(info.value) == (
            "the handler of queue 'emails' must be a function taking (payload) or "
            f"(payload, meta), not {shown}"
        )
    # Nothing was declared by the refused attempts: the queue is still free.
    harness.queue("emails")(send_email)
    assert post(harness, "emails").status == 200
