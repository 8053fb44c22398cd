from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.crypto import PayloadCipher
from taskless.core.envelope import EncryptedPayload, build_envelope
from taskless.core.errors import ConfigurationError, RetryLater, ValidationError
from taskless.core.hooks import hookimpl, registered
from taskless.core.models import JobMeta
from taskless.core.receiver import ReceivedRequest, Receiver, ReceiverResponse
from taskless.core.signing import signed_headers

SECRET = "whsec_dGFza2xlc3MtcmVjZWl2ZXItdGVzdHM="
NOW = 1_700_000_000
AT = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


class Order(BaseModel):
    id: int
    email: str


def receiver(**kwargs: Any) -> Receiver:
    return Receiver([SECRET], clock=lambda: NOW, **kwargs)


def delivery(
    queue: str = "orders",
    payload: Any = None,
    *,
    path: str | None = None,
    job: str = "job-1",
    attempt: int = 1,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    run_id: str = "run_abc",
) -> ReceivedRequest:
    if payload is None:
        payload = {"id": 7, "email": "ada@example.com"}
    if body is None:
        body = build_envelope(queue, job, attempt, AT, payload)
    if headers is None:
        headers = signed_headers(body, SECRET, msg_id=run_id, timestamp=NOW)
    return ReceivedRequest(method, path or f"/api/queues/{queue}", headers, body)


def error_of(response: ReceiverResponse) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    return error


# --- routes ----------------------------------------------------------------------------------


def test_route_for_uses_the_prefix() -> None:
    assert receiver().route_for("emails") == "/api/queues/emails"
    assert receiver(prefix="/hooks/").route_for("emails") == "/hooks/emails"
    assert receiver(prefix="").route_for("emails") == "/emails"


def test_register_returns_what_it_learned() -> None:
    def handle(payload: Order, meta: JobMeta) -> None: ...

    registration = receiver().register("orders", handle)
    assert registration.queue == "orders"
    assert registration.route == "/api/queues/orders"
    assert registration.payload_type is Order
    assert not registration.is_async


@pytest.mark.parametrize("name", ["", "a/b", "..", "with space", "é", "x" * 201])
def test_invalid_queue_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        receiver().register(name, lambda payload: None)


def test_a_queue_or_route_is_registered_once() -> None:
    r = receiver()
    r.register("orders", lambda payload: None)
    with pytest.raises(ConfigurationError):
        r.register("orders", lambda payload: None)
    with pytest.raises(ConfigurationError):
        r.register("other", lambda payload: None, route="/api/queues/orders")


def test_custom_route() -> None:
    r = receiver()
    r.register("orders", lambda payload: "custom", route="/webhooks/orders/")
    response = r.handle(delivery(path="/webhooks/orders"))
    assert response.status == 200
    assert response.json() == {"ok": True, "result": "custom"}
    assert r.owns("/webhooks/orders") and not r.owns("/webhooks")


def test_trailing_slash_is_the_same_route() -> None:
    r = receiver()
    r.register("orders", lambda payload: 1)
    assert r.handle(delivery(path="/api/queues/orders/")).status == 200


@pytest.mark.parametrize("path", ["/", "/api/queues", "/api/queues/", "/api/queues/a/b", "/other"])
def test_paths_that_are_not_queue_routes_are_404(path: str) -> None:
    r = receiver()
    r.register("orders", lambda payload: None)
    response = r.handle(delivery(path=path))
    assert response.status == 404
    assert error_of(response)["code"] == "not_found"


# --- order of checks -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_are_405_with_allow(method: str) -> None:
    r = receiver()
    r.register("orders", lambda payload: None)
    response = r.handle(delivery(method=method))
    assert response.status == 405
    assert response.headers["allow"] == "POST"


def test_method_is_case_insensitive() -> None:
    r = receiver()
    r.register("orders", lambda payload: None)
    assert r.handle(delivery(method="post")).status == 200


def test_unsigned_request_to_unknown_queue_learns_nothing() -> None:
    response = receiver().handle(delivery("nope", headers={}))
    assert response.status == 401


def test_signed_request_to_unknown_queue_is_404() -> None:
    response = receiver().handle(delivery("nope"))
    assert response.status == 404
    assert "/api/queues/nope" in error_of(response)["message"]


def test_handler_not_called_on_bad_signature() -> None:
    calls: list[Any] = []
    r = receiver()
    r.register("orders", calls.append)
    good = delivery()
    tampered = ReceivedRequest("POST", good.path, good.headers, good.body.replace(b"7", b"8"))
    response = r.handle(tampered)
    assert response.status == 401
    assert error_of(response)["code"] == "bad_signature"
    assert calls == []


def test_a_garbled_signature_is_401_saying_no_signature_matched() -> None:
    r = receiver()
    r.register("orders", lambda payload: None)
    good = delivery()
    headers = {**good.headers, "webhook-signature": "v1,AAAA"}
    response = r.handle(ReceivedRequest("POST", good.path, headers, good.body))
    assert response.status == 401
    error = error_of(response)
    assert error["code"] == "bad_signature"
    assert error["message"].startswith("no signature matched")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b"[]", b'{"v":1}', b'{"v":9,"queue":"orders"}', b"[" * 50_000],
)
def test_signed_but_malformed_body_is_400(body: bytes) -> None:
    calls: list[Any] = []
    r = receiver()
    r.register("orders", calls.append)
    response = r.handle(delivery(body=body))
    assert response.status == 400
    assert error_of(response)["code"] == "bad_request"
    assert calls == []


def test_body_for_another_queue_is_refused() -> None:
    calls: list[Any] = []
    r = receiver()
    r.register("orders", calls.append)
    r.register("refunds", calls.append)
    body = build_envelope("refunds", "j", 1, AT, {})
    response = r.handle(delivery("orders", body=body))
    assert response.status == 401
    assert "refunds" in error_of(response)["message"]
    assert calls == []


KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes in base64
OLD_KEY = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


def sealed_delivery(payload: Any, key: str = KEY, queue: str = "orders") -> ReceivedRequest:
    encrypted = PayloadCipher(key).encrypt(payload, queue)
    body = build_envelope("orders", "j", 1, AT, None, encrypted=EncryptedPayload(**encrypted))
    return delivery(body=body)


def test_an_encrypted_payload_reaches_the_handler_decrypted() -> None:
    seen: list[Any] = []
    r = receiver(cipher=PayloadCipher(KEY))
    r.register("orders", lambda payload: seen.append(payload))
    payload = {"id": 7, "email": "ada@example.com", "n": 12345678901234567890, "city": "Zürich"}
    response = r.handle(sealed_delivery(payload))
    assert response.status == 200, response.body
    assert seen == [payload]


def test_a_payload_encrypted_with_a_previous_key_is_decrypted() -> None:
    seen: list[Order] = []

    def handle(payload: Order) -> None:
        seen.append(payload)

    r = receiver(cipher=PayloadCipher(KEY, (OLD_KEY,)))
    r.register("orders", handle)
    assert r.handle(sealed_delivery({"id": 1, "email": "a@b.c"}, OLD_KEY)).status == 200
    assert seen == [Order(id=1, email="a@b.c")]


@pytest.mark.parametrize(
    ("cipher", "sealed_with", "queue", "message"),
    [
        (None, KEY, "orders", "no TASKLESS_ENCRYPTION_KEY is set here"),
        (PayloadCipher(OLD_KEY), KEY, "orders", "which is not TASKLESS_ENCRYPTION_KEY"),
        (PayloadCipher(KEY), KEY, "refunds", "encrypted for another queue than 'orders'"),
    ],
    ids=["no-key", "another-key", "sealed-for-another-queue"],
)
def test_an_encrypted_payload_that_does_not_decrypt_is_422(
    cipher: PayloadCipher | None, sealed_with: str, queue: str, message: str
) -> None:
    calls: list[Any] = []
    r = receiver(cipher=cipher)
    r.register("orders", calls.append)
    response = r.handle(sealed_delivery({"id": 1}, sealed_with, queue))
    assert response.status == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("encrypted_payload", "encrypted")
    assert message in error["message"]
    assert calls == []


def test_altered_ciphertext_is_422() -> None:
    calls: list[Any] = []
    r = receiver(cipher=PayloadCipher(KEY))
    r.register("orders", calls.append)
    encrypted = PayloadCipher(KEY).encrypt({"id": 1}, "orders")
    data = bytearray(base64.b64decode(encrypted["data"]))
    data[0] ^= 1
    encrypted["data"] = base64.b64encode(bytes(data)).decode()
    body = build_envelope("orders", "j", 1, AT, None, encrypted=EncryptedPayload(**encrypted))
    response = r.handle(delivery(body=body))
    assert response.status == 422
    assert "it was altered" in error_of(response)["message"]
    assert calls == []


# --- handlers --------------------------------------------------------------------------------


def test_handler_gets_payload_and_meta() -> None:
    seen: list[tuple[Order, JobMeta]] = []

    def handle(payload: Order, meta: JobMeta) -> dict[str, int]:
        seen.append((payload, meta))
        return {"handled": payload.id}

    r = receiver()
    r.register("orders", handle)
    request = delivery(job="order-7", attempt=3, run_id="run_42")
    response = r.handle(request)
    assert (response.status, response.json()) == (200, {"ok": True, "result": {"handled": 7}})
    payload, meta = seen[0]
    assert payload == Order(id=7, email="ada@example.com")
    assert (meta.queue, meta.name, meta.run_id, meta.attempt) == ("orders", "order-7", "run_42", 3)
    assert meta.scheduled_at == AT
    assert meta.headers["webhook-id"] == "run_42"
    assert meta.headers["content-type"] == "application/json"


def test_meta_headers_are_lower_case() -> None:
    seen: list[JobMeta] = []
    r = receiver()
    r.register("orders", lambda payload, meta: seen.append(meta))
    request = delivery()
    headers = {k.upper(): v for k, v in request.headers.items()} | {"X-Tenant": "acme"}
    r.handle(ReceivedRequest("POST", request.path, headers, request.body))
    assert seen[0].headers["x-tenant"] == "acme"
    assert seen[0].headers["webhook-id"] == "run_abc"


def test_handler_with_payload_only() -> None:
    r = receiver()
    r.register("orders", lambda payload: payload["id"])
    assert r.handle(delivery()).json()["result"] == 7


def test_meta_as_keyword_only() -> None:
    seen: list[JobMeta] = []

    def handle(payload: dict[str, Any], *, meta: JobMeta) -> None:
        seen.append(meta)

    r = receiver()
    r.register("orders", handle)
    assert r.handle(delivery()).status == 200
    assert seen[0].run_id == "run_abc"


def test_callable_objects_sync_and_async() -> None:
    class Sync:
        def __call__(self, payload: Order, meta: JobMeta) -> int:
            return payload.id

    class Async:
        async def __call__(self, payload: Order) -> int:
            return payload.id * 2

    r = receiver()
    assert r.register("orders", Sync()).payload_type is Order
    assert r.register("refunds", Async()).is_async
    assert r.handle(delivery("orders")).json()["result"] == 7
    assert r.handle(delivery("refunds")).json()["result"] == 14


def test_unusable_handler_signatures_are_refused() -> None:
    def no_params() -> None: ...

    def three_required(payload: Any, meta: JobMeta, extra: int) -> None: ...

    def required_keyword(payload: Any, *, flag: bool) -> None: ...

    for func in (no_params, three_required, required_keyword):
        with pytest.raises(ConfigurationError, match="handler"):
            receiver().register("orders", func)


@pytest.mark.parametrize(
    ("func", "shown"),
    [(42, "int 42"), (None, "None"), (int, "the class int"), (Order, "the class Order"),
     ("x" * 100, "str '" + "x" * 56 + "...")],
    ids=["int", "none", "builtin-class", "model-class", "long-str"],
)
def test_what_is_not_a_function_is_a_type_error_naming_the_queue(func: Any, shown: str) -> None:
    r = receiver()
    with pytest.raises(TypeError) as info:
        r.register("orders", func)
    assert str(info.value) == (
        "the handler of queue 'orders' must be a function taking (payload) or (payload, meta), "
        f"not {shown}"
    )
    assert r.registrations == {}


def test_optional_extra_parameters_are_fine() -> None:
    def handle(payload: Any, meta: JobMeta, extra: int = 1, *, flag: bool = False) -> int:
        return extra

    r = receiver()
    r.register("orders", handle)
    assert r.handle(delivery()).json()["result"] == 1


# --- payload types ---------------------------------------------------------------------------


def test_payload_failing_the_model_is_422_naming_the_field() -> None:
    calls: list[Any] = []

    def handle(payload: Order) -> None:
        calls.append(payload)

    r = receiver()
    r.register("orders", handle)
    response = r.handle(delivery(payload={"id": "seven", "email": "a@b"}))
    assert response.status == 422
    error = error_of(response)
    assert error["code"] == "invalid"
    assert error["field"] == "payload.id"
    assert error["errors"][0]["field"] == "payload.id"
    assert calls == []


def test_all_validation_errors_are_listed() -> None:
    r = receiver()
    r.register("orders", lambda payload: None, payload_type=Order)
    response = r.handle(delivery(payload={"nope": 1}))
    fields = {e["field"] for e in error_of(response)["errors"]}
    assert fields == {"payload.id", "payload.email"}


def test_explicit_payload_type_wins() -> None:
    def handle(payload: dict[str, Any]) -> Any:
        return payload

    r = receiver()
    assert r.register("orders", handle, payload_type=list[int]).payload_type == list[int]
    assert r.handle(delivery(payload={"a": 1})).status == 422


def test_generic_annotations_validate() -> None:
    def handle(payload: list[int]) -> int:
        return sum(payload)

    r = receiver()
    r.register("orders", handle)
    assert r.handle(delivery(payload=[1, 2, 3])).json()["result"] == 6
    assert r.handle(delivery(payload=["x"])).status == 422


def _unannotated(payload):  # type: ignore[no-untyped-def]
    return payload


def _any(payload: Any) -> Any:
    return payload


def _object(payload: object) -> object:
    return payload


@pytest.mark.parametrize("handle", [_unannotated, _any, _object])
def test_no_annotation_means_no_validation(handle: Any) -> None:
    r = receiver()
    assert r.register("orders", handle).payload_type is None
    assert r.handle(delivery(payload={"anything": [1]})).json()["result"] == {"anything": [1]}


def test_unresolvable_string_annotation_is_a_configuration_error() -> None:
    class Local(BaseModel):
        x: int

    def handle(payload: Local) -> None: ...  # a string annotation naming a local class

    with pytest.raises(ConfigurationError, match="payload_type"):
        receiver().register("orders", handle)
    assert receiver().register("orders", handle, payload_type=Local).payload_type is Local


def test_type_pydantic_cannot_handle_is_a_configuration_error() -> None:
    class Opaque:
        pass

    with pytest.raises(ConfigurationError, match="orders"):
        receiver().register("orders", lambda payload: None, payload_type=Opaque)


# --- outcomes --------------------------------------------------------------------------------


def test_results_are_json_encoded_with_pydantic() -> None:
    r = receiver()
    r.register("orders", lambda payload: Order(id=1, email="x"))
    r.register("refunds", lambda payload: None)
    assert r.handle(delivery("orders")).json() == {"ok": True, "result": {"id": 1, "email": "x"}}
    assert r.handle(delivery("refunds")).json() == {"ok": True, "result": None}


@pytest.mark.parametrize("result", [object(), float("nan"), "\ud800"])
def test_unencodable_result_is_still_200(result: Any, caplog: pytest.LogCaptureFixture) -> None:
    r = receiver()
    r.register("orders", lambda payload: result)
    with caplog.at_level(logging.WARNING, logger="taskless.receiver"):
        response = r.handle(delivery())
    assert (response.status, response.json()) == (200, {"ok": True, "result": None})
    assert "not JSON" in caplog.text


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_handler_exception_is_500_logged_not_leaked(
    caplog: pytest.LogCaptureFixture, flavour: str
) -> None:
    def handle(payload: Any) -> None:
        raise KeyError("database password is hunter2")

    async def handle_async(payload: Any) -> None:
        handle(payload)

    r = receiver()
    r.register("orders", handle if flavour == "sync" else handle_async)
    with caplog.at_level(logging.ERROR, logger="taskless.receiver"):
        response = r.handle(delivery())
    assert response.status == 500
    assert error_of(response) == {"code": "handler_error", "message": "the handler raised KeyError"}
    assert b"hunter2" not in response.body
    assert "hunter2" in caplog.text  # the traceback is in the app's logs
    assert caplog.records[0].exc_info is not None
    # An async handler run from sync code: its error alone, nothing chained before it.
    assert "no running event loop" not in caplog.text
    assert "During handling of the above exception" not in caplog.text


@pytest.mark.parametrize(
    ("seconds", "header"), [(30, "30"), (0.2, "1"), (0, "0"), (1e12, "2147483647")]
)
def test_retry_later_is_503_with_retry_after(seconds: float, header: str) -> None:
    def handle(payload: Any) -> None:
        raise RetryLater(seconds)

    r = receiver()
    r.register("orders", handle)
    response = r.handle(delivery())
    assert response.status == 503
    assert response.headers["retry-after"] == header
    assert error_of(response)["code"] == "retry_later"
    assert error_of(response)["retryAfter"] == int(header)


def test_base_exceptions_are_not_swallowed() -> None:
    def handle(payload: Any) -> None:
        raise KeyboardInterrupt

    r = receiver()
    r.register("orders", handle)
    with pytest.raises(KeyboardInterrupt):
        r.handle(delivery())


# --- sync and async --------------------------------------------------------------------------


def test_sync_handle_runs_async_handlers() -> None:
    async def handle(payload: Order) -> int:
        await asyncio.sleep(0)
        return payload.id

    r = receiver()
    r.register("orders", handle)
    assert r.handle(delivery()).json()["result"] == 7


@pytest.mark.anyio
async def test_sync_handle_inside_a_running_loop_runs_async_handlers() -> None:
    async def handle(payload: Order) -> int:
        await asyncio.sleep(0)
        return payload.id

    r = receiver()
    r.register("orders", handle)
    assert r.handle(delivery()).json()["result"] == 7


@pytest.mark.anyio
async def test_handle_async_awaits_async_handlers() -> None:
    async def handle(payload: Order, meta: JobMeta) -> str:
        await asyncio.sleep(0)
        return meta.run_id

    r = receiver()
    r.register("orders", handle)
    assert (await r.handle_async(delivery())).json()["result"] == "run_abc"


@pytest.mark.anyio
async def test_handle_async_runs_sync_handlers_in_a_thread() -> None:
    threads: list[int] = []

    def handle(payload: Order) -> int:
        threads.append(threading.get_ident())
        return payload.id

    r = receiver()
    r.register("orders", handle)
    response = await r.handle_async(delivery())
    assert response.json()["result"] == 7
    assert threads and threads[0] != threading.get_ident()


@pytest.mark.anyio
async def test_handle_async_maps_errors_the_same_way() -> None:
    async def fail(payload: Any) -> None:
        raise RetryLater(5)

    def boom(payload: Any) -> None:
        raise RuntimeError

    r = receiver()
    r.register("orders", fail)
    r.register("refunds", boom)
    assert (await r.handle_async(delivery("orders"))).headers["retry-after"] == "5"
    assert (await r.handle_async(delivery("refunds"))).status == 500
    assert (await r.handle_async(delivery("orders", method="GET"))).status == 405
    assert (await r.handle_async(delivery("orders", headers={}))).status == 401


# --- hooks -----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @hookimpl
    def taskless_delivery_received(self, queue: str, meta: JobMeta) -> None:
        self.events.append(("received", queue, meta.run_id))

    @hookimpl
    def taskless_delivery_handled(
        self, queue: str, meta: JobMeta, status: int, error: BaseException | None, duration: float
    ) -> None:
        assert duration >= 0
        self.events.append(("handled", queue, status, type(error).__name__ if error else None))


@pytest.mark.parametrize("handle_async", [False, True])
def test_delivery_hooks(handle_async: bool) -> None:
    def handle(payload: Order) -> None:
        if payload.id == 500:
            raise ValueError
        if payload.id == 503:
            raise RetryLater(1)

    r = receiver()
    r.register("orders", handle)
    recorder = Recorder()

    def send(request: ReceivedRequest) -> int:
        if handle_async:
            return asyncio.run(r.handle_async(request)).status
        return r.handle(request).status

    with registered(recorder):
        statuses = [
            send(delivery(payload={"id": i, "email": "x"})) for i in (200, 500, 503)
        ] + [send(delivery(payload={"id": "bad"})), send(delivery(headers={}))]
    assert statuses == [200, 500, 503, 422, 401]
    assert recorder.events == [
        ("received", "orders", "run_abc"),
        ("handled", "orders", 200, None),
        ("received", "orders", "run_abc"),
        ("handled", "orders", 500, "ValueError"),
        ("received", "orders", "run_abc"),
        ("handled", "orders", 503, "RetryLater"),
        ("received", "orders", "run_abc"),
        ("handled", "orders", 422, "ValidationError"),
    ]


def test_a_failing_hook_does_not_fail_the_delivery() -> None:
    class Broken:
        @hookimpl
        def taskless_delivery_received(self, queue: str, meta: JobMeta) -> None:
            raise RuntimeError("metrics are down")

    r = receiver()
    r.register("orders", lambda payload: 1)
    with registered(Broken()):
        assert r.handle(delivery()).status == 200


def test_response_helpers() -> None:
    response = ReceiverResponse.from_json(201, {"a": "é"}, {"x-extra": "1"})
    assert response.headers == {"content-type": "application/json", "x-extra": "1"}
    assert response.body == '{"a":"é"}'.encode()
    assert json.loads(response.body) == response.json()


# --- body size -------------------------------------------------------------------------------


def test_a_body_over_max_body_bytes_is_413_before_anything_else() -> None:
    seen: list[Any] = []
    r = receiver(max_body_bytes=300)
    r.register("orders", seen.append)
    body = build_envelope("orders", "j", 1, AT, {"pad": "x" * 300})
    for request in (
        delivery(body=body),
        delivery(body=body, headers={}),  # unsigned: still 413, the signature is not looked at
        delivery(body=body, path="/elsewhere", method="GET"),
    ):
        response = r.handle(request)
        assert response.status == 413
        assert error_of(response) == {
            "code": "too_large",
            "message": "the request body is larger than 300 bytes, this receiver's limit "
            "(max_body_bytes); a delivery's body is at most about 1 MiB",
        }
    assert seen == []
    assert r.too_large().status == 413
    exact = build_envelope("orders", "j", 1, AT, {"pad": ""})
    exact = build_envelope("orders", "j", 1, AT, {"pad": "x" * (300 - len(exact))})
    assert len(exact) == 300
    assert r.handle(delivery(body=exact)).status == 200


def test_the_default_body_limit_is_2_mib() -> None:
    from taskless.core.receiver import DEFAULT_MAX_BODY_BYTES

    assert DEFAULT_MAX_BODY_BYTES == 2 * 1024 * 1024
    assert receiver().max_body_bytes == DEFAULT_MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("value", "declared"),
    [(None, False), ("", False), ("300", False), (" 300 ", False), ("301", True),
     (" 301", True), ("abc", False), ("-1", False), ("1e9", False), ("9" * 40, True)],
)
def test_declares_too_large_reads_content_length(value: str | None, declared: bool) -> None:
    assert receiver(max_body_bytes=300).declares_too_large(value) is declared


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1, ValueError), ("2MB", TypeError), (True, TypeError)]
)
def test_max_body_bytes_must_be_a_positive_int(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_body_bytes"):
        receiver(max_body_bytes=value)

