"""The delivery body: everything a handler relies on, so that the signature covers all of it.

::

    {"v":1,"queue":"emails","job":"welcome-42","attempt":1,
     "scheduledAt":"2024-03-01T00:00:00Z","payload":{"to":"a@example.com"}}

With an encryption key on the client, ``payload`` is replaced by
``"encrypted":{"alg":"A256GCM","kid":..,"iv":..,"data":..}``; :func:`parse_envelope` reads that
form into :attr:`Envelope.encrypted` (decryption is not done here). The run id is not in the
body: it is the ``webhook-id`` header. Unknown top-level keys are ignored, so newer job servers
can add fields without breaking older receivers; an unknown ``v`` is refused.

JSON is the standard library's: integers of any size stay exact ``int``, ``10.5`` stays a
``float``, and strings are UTF-8 on the wire (``ensure_ascii=False``). ``NaN`` and
``Infinity`` are not JSON and are refused both ways.

The headers of a delivery (:func:`delivery_headers`) are built here too, once for the job
server's dispatcher and the in-memory fake: content type, user agent, the job's own headers,
the Standard Webhooks headers and ``x-taskless-queue``/``-job``/``-attempt``, in that order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NoReturn

from ._frozen import fast_init
from .errors import ValidationError
from .signing import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, signature_header
from .timeutil import format_timestamp, parse_timestamp, to_utc

__all__ = [
    "ENVELOPE_VERSION",
    "PROTECTED_HEADERS",
    "EncryptedPayload",
    "Envelope",
    "build_envelope",
    "delivery_headers",
    "parse_envelope",
]

ENVELOPE_VERSION = 1

#: Headers every delivery carries (or that belong to the connection): a job's own headers
#: never replace them, whatever their case.
PROTECTED_HEADERS: Final = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection",
     HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE,
     "x-taskless-queue", "x-taskless-job", "x-taskless-attempt"}
)


@dataclass(frozen=True)
class EncryptedPayload:
    """An encrypted payload as it travels: algorithm, key id, and base64 ``iv`` and ``data``."""

    alg: str
    kid: str
    iv: str
    data: str

    def to_json(self) -> dict[str, str]:
        return {"alg": self.alg, "kid": self.kid, "iv": self.iv, "data": self.data}


@fast_init
@dataclass(frozen=True)
class Envelope:
    """A parsed delivery body. Exactly one of ``payload`` and ``encrypted`` is meaningful:
    ``encrypted`` is ``None`` for a plain payload (which may itself be ``None``, JSON null)."""

    queue: str
    job: str
    attempt: int
    scheduled_at: datetime
    payload: Any = None
    encrypted: EncryptedPayload | None = None


# json.dumps(ensure_ascii=False, separators=(",", ":"), allow_nan=False), built once.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def build_envelope(
    queue: str,
    job: str,
    attempt: int,
    scheduled_at: datetime,
    payload: Any,
    *,
    encrypted: EncryptedPayload | None = None,
) -> bytes:
    """The UTF-8 JSON body of one delivery attempt (compact, keys in protocol order,
    ``scheduledAt`` in UTC).

    ``payload`` must be a JSON value (dict, list, str, int, float, bool, None); with
    ``encrypted`` given, ``payload`` is ignored and the encrypted form is sent instead.
    Raises :class:`ValidationError` naming ``payload`` when it cannot be encoded.
    """
    if scheduled_at.utcoffset() is None:
        raise ValidationError("scheduled_at", "must be an aware datetime")
    body: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "queue": queue,
        "job": job,
        "attempt": attempt,
        "scheduledAt": format_timestamp(to_utc(scheduled_at)),
    }
    if encrypted is not None:
        body["encrypted"] = encrypted.to_json()
    else:
        body["payload"] = payload
    try:
        text = _ENCODER.encode(body)
    except (TypeError, ValueError) as exc:
        raise ValidationError("payload", f"is not JSON-serializable: {exc}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800" in a string
        raise ValidationError("payload", "contains a string that is not valid Unicode") from None


def delivery_headers(
    run_id: str,
    timestamp: int | None,
    body: bytes,
    secrets: Sequence[Secret],
    *,
    queue: str,
    job: str,
    attempt: int,
    job_headers: Mapping[str, str],
    version: str,
) -> dict[str, str]:
    """The headers of one delivery attempt of ``body`` (what :func:`build_envelope` made), in
    the order they are sent: ``content-type``, ``user-agent`` (``taskless/<version>``), the
    job's own headers (except :data:`PROTECTED_HEADERS`), ``webhook-id`` (the run id),
    ``webhook-timestamp`` and ``webhook-signature`` (one signature per secret), then
    ``x-taskless-queue``, ``x-taskless-job`` and ``x-taskless-attempt``.

    ``timestamp=None`` leaves the delivery unsigned (no ``webhook-timestamp`` or
    ``webhook-signature``; ``secrets`` and ``body`` are then unused): the in-memory fake's
    direct mode, which hands the envelope to the handler without HTTP.

    :raises ConfigurationError: a delivery to sign and no (or a bad) secret.
    """
    headers = {"content-type": "application/json", "user-agent": f"taskless/{version}"}
    for name, value in job_headers.items():
        if name.lower() not in PROTECTED_HEADERS:
            headers[name] = value
    headers[HEADER_ID] = run_id
    if timestamp is not None:
        headers[HEADER_TIMESTAMP] = str(timestamp)
        headers[HEADER_SIGNATURE] = signature_header(run_id, timestamp, body, secrets)
    headers["x-taskless-queue"] = queue
    headers["x-taskless-job"] = job
    headers["x-taskless-attempt"] = str(attempt)
    return headers


def parse_envelope(body: bytes) -> Envelope:
    """Parse and check a delivery body. Raises :class:`ValidationError` (``field`` names the
    culprit: ``body``, ``v``, ``queue``, ``job``, ``attempt``, ``scheduledAt``, ``payload`` or
    ``encrypted``) on non-UTF-8 bytes, invalid JSON or a wrong shape; never anything else."""
    data = _load_json(body)
    if not isinstance(data, dict):
        _fail("body", "must be a JSON object")
    version = data.get("v")
    if type(version) is not int:
        _fail("v", "is missing or not an integer")
    if version != ENVELOPE_VERSION:
        _fail("v", f"unsupported envelope version {version} (this receiver reads 1)")
    has_payload = "payload" in data
    has_encrypted = "encrypted" in data
    if has_payload == has_encrypted:
        _fail("payload", "exactly one of 'payload' and 'encrypted' must be present")
    return Envelope(
        queue=_non_empty_str(data, "queue"),
        job=_non_empty_str(data, "job"),
        attempt=_attempt(data),
        scheduled_at=_scheduled_at(data),
        payload=data.get("payload"),
        encrypted=_encrypted(data["encrypted"]) if has_encrypted else None,
    )


def _load_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        _fail("body", "is not valid UTF-8")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        _fail("body", "is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integer literals
        _fail("body", f"is not valid JSON: {exc}")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _non_empty_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        _fail(key, "must be a non-empty string")
    return value


def _attempt(data: dict[str, Any]) -> int:
    value = data.get("attempt")
    if type(value) is not int or value < 1:  # bool is an int subclass: refuse True
        _fail("attempt", "must be an integer >= 1")
    return value


def _scheduled_at(data: dict[str, Any]) -> datetime:
    value = data.get("scheduledAt")
    if not isinstance(value, str):
        _fail("scheduledAt", "must be an ISO-8601 timestamp string")
    try:
        return parse_timestamp(value, field="scheduledAt")
    except ValidationError as exc:
        _fail("scheduledAt", exc.reason)
    except (ValueError, OverflowError):  # belt and braces: a body must never cause a 500
        _fail("scheduledAt", "must be an ISO-8601 timestamp with an offset")


def _encrypted(value: Any) -> EncryptedPayload:
    fields = ("alg", "kid", "iv", "data")
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in fields):
        _fail("encrypted", "must be an object with string alg, kid, iv and data")
    return EncryptedPayload(*(value[k] for k in fields))


def _fail(field: str, message: str) -> NoReturn:
    raise ValidationError(field, message)
