"""The fake reads request bodies as the job server reads what the HTTP transport sends: small
bodies of plain JSON values are copied instead of going through JSON text, with the same
result (values, types, errors, size limit)."""

from __future__ import annotations

import enum
import random
from typing import Any

import pytest

from taskless.core import api
from taskless.core.transport import ApiRequest
from taskless.testing import TasklessFake
from taskless.testing.fake import _ENCODER, _read, _request_body

ENDPOINT = "http://127.0.0.1:8000/api/queues/q"


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


def through_json(value: Any) -> Any:
    """What the fake did before reading plain bodies directly: JSON text and back."""
    raw = b"" if value is None else _ENCODER.encode(value).encode("utf-8")
    return api.parse_json_body(raw)


def outcome(read: Any, value: Any) -> Any:
    try:
        return "ok", typed(read(value))
    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is compared
        return "error", type(exc), str(exc)


def typed(value: Any) -> Any:
    """``value`` with every type spelt out, so that 1, 1.0 and True or 0.0 and -0.0 differ."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


TRICKY = [
    None, 0, -1, True, False, 0.0, -0.0, 1e308, -1.7976931348623157e308, 5e-324, 0.1,
    2**2000, -(2**2000), 2**2001, 10**700, "", "plain", "\x00\x1f\"\\\n\u007f", "é", "🚒",
    "\ud800", [], {}, (1, 2), {1: "a"}, {True: 1}, {None: 1}, {"a": (1,)}, float("nan"),
    float("inf"), Colour.RED, Text("x"), {Text("k"): 1}, [[[[[]]]]], {"a": {"b": {"c": [1]}}},
    list(range(40)), {str(i): i for i in range(40)}, "x" * 200_000, ["y" * 1000] * 5,
    {"payload": {"to": "a@example.com", "n": 1}, "endpoint": ENDPOINT, "options": {}},
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -7, 2**63, -(2**1999), 2**2000, 2**2001])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e300, 3.141592653589793, float("inf")])
    if kind in (3, 4):
        alphabet = "ab\"\\\n\x01 é" if kind == 4 else "abc "
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
    if kind == 5:
        return rng.choice([(), (1,), Colour.RED])
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["a", "b", "c", "é", 1] if rng.random() < 0.1 else ["a", "b", "c", "d"]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


@pytest.mark.parametrize("value", TRICKY, ids=lambda v: repr(v)[:30])
def test_a_body_reads_as_through_json(value: Any) -> None:
    assert outcome(lambda v: _read(_request_body(v)), value) == outcome(through_json, value)


def test_random_bodies_read_as_through_json() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        value = random_value(rng)
        assert outcome(lambda v: _read(_request_body(v)), value) == outcome(through_json, value)


def test_a_body_read_directly_is_a_copy() -> None:
    body = {"items": [1, {"k": "v"}], "n": 1.5}
    read = _read(_request_body(body))
    assert read == body and read is not body
    assert read["items"] is not body["items"] and read["items"][1] is not body["items"][1]


@pytest.mark.parametrize(
    "payload", [{"items": [1, 2]}, {"items": [1, 2], "city": "Zürich"}], ids=["plain", "not"]
)
def test_the_caller_changing_its_body_afterwards_changes_nothing(payload: Any) -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    body = {"payload": payload, "endpoint": ENDPOINT, "options": {"retries": 1}}
    response = fake.handle_api(ApiRequest("PUT", "/v1/queues/q/jobs/j", body))
    assert response.status == 201
    payload["items"].append(3)
    body["options"]["retries"] = 9
    expected = {**body, "payload": {**payload, "items": [1, 2]}, "options": {"retries": 1}}
    assert fake.calls[0].json == expected
    fake.calls[0].json["payload"]["items"].append(4)
    assert fake.calls[0].json == expected
    stored = fake.job("j", "q")
    assert stored is not None and stored.payload["items"] == [1, 2]
    assert stored.options.retries == 1


def test_the_size_limit_holds_whichever_way_the_body_is_read() -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    limit = api.MAX_BODY_BYTES

    def put(name: str, text: str) -> int:
        body = {"payload": text, "endpoint": ENDPOINT, "options": {}}
        return fake.handle_api(ApiRequest("PUT", f"/v1/queues/q/jobs/{name}", body)).status

    overhead = len(_ENCODER.encode({"payload": "", "endpoint": ENDPOINT, "options": {}}))
    assert put("fits", "x" * (limit - overhead)) == 201
    assert put("too-big", "x" * (limit - overhead + 1)) == 422
    assert fake.calls[-1].response["error"]["field"] == "body"
    assert put("escaped", "\n" * ((limit - overhead) // 2 + 1)) == 422
    assert len(fake.calls[0].json["payload"]) == limit - overhead
    # The big value last: the size is checked once the whole body is read, too.
    last = {"endpoint": ENDPOINT, "options": {}, "payload": "x" * (limit - overhead + 1)}
    assert fake.handle_api(ApiRequest("PUT", "/v1/queues/q/jobs/last", last)).status == 422
    assert fake.calls[-1].response["error"]["field"] == "body"


def test_what_json_refuses_fails_as_on_the_wire() -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    for payload, error in [(float("nan"), ValueError), ("\ud800", UnicodeEncodeError)]:
        body = {"payload": payload, "endpoint": ENDPOINT, "options": {}}
        with pytest.raises(error):
            fake.handle_api(ApiRequest("PUT", "/v1/queues/q/jobs/j", body))
    assert fake.calls == []
