from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from taskless.core.errors import ConfigurationError, SignatureError
from taskless.core.signing import (
    Verifier,
    decode_secret,
    sign,
    signature_header,
    signed_headers,
)

KEY = b"taskless-test-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OLD_KEY = b"the-previous-key"
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else").decode()

NOW = 1_700_000_000
BODY = b'{"v":1,"queue":"emails","job":"welcome","attempt":1,"payload":{"to":"a@b"}}'
MSG_ID = "run_0123456789"


def verifier(*secrets: str, tolerance: int = 300) -> Verifier:
    return Verifier(secrets or (SECRET,), tolerance=tolerance, clock=lambda: NOW)


def headers(timestamp: int = NOW, secret: str = SECRET, body: bytes = BODY) -> dict[str, str]:
    return signed_headers(body, secret, msg_id=MSG_ID, timestamp=timestamp)


# --- secrets ---------------------------------------------------------------------------------


def test_decode_secret_forms() -> None:
    b64 = base64.b64encode(KEY).decode()
    assert decode_secret(SECRET) == KEY
    assert decode_secret(b64) == KEY  # no prefix: still base64, like standardwebhooks
    assert decode_secret(b64.rstrip("=")) == KEY  # missing padding tolerated
    assert decode_secret(f"  {SECRET}\n") == KEY
    assert decode_secret(KEY) == KEY  # bytes are the raw key


@pytest.mark.parametrize("bad", ["", "whsec_", "whsec_not base64!", "%%%%", b""])
def test_bad_secret_is_a_configuration_error_without_the_secret(bad: str | bytes) -> None:
    with pytest.raises(ConfigurationError) as info:
        decode_secret(bad)
    if isinstance(bad, str) and len(bad) > 6:
        assert bad not in str(info.value)


def test_verifier_needs_a_secret() -> None:
    with pytest.raises(ConfigurationError):
        Verifier([])


def test_verifier_accepts_a_lone_string() -> None:
    Verifier(SECRET, clock=lambda: NOW).verify(headers(), BODY)


# --- signing ---------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_id_timestamp_body() -> None:
    digest = hmac.new(KEY, f"{MSG_ID}.{NOW}.".encode() + BODY, hashlib.sha256).digest()
    assert sign(MSG_ID, NOW, BODY, SECRET) == "v1," + base64.b64encode(digest).decode()


def test_signature_header_has_one_signature_per_secret_first_first() -> None:
    header = signature_header(MSG_ID, NOW, BODY, [SECRET, OLD_SECRET])
    first, second = header.split(" ")
    assert first == sign(MSG_ID, NOW, BODY, SECRET)
    assert second == sign(MSG_ID, NOW, BODY, OLD_SECRET)


def test_signed_headers_defaults() -> None:
    built = signed_headers("{}", SECRET)
    assert built["webhook-id"].startswith("run_")
    assert abs(int(built["webhook-timestamp"]) - time.time()) < 5
    assert built["content-type"] == "application/json"
    Verifier([SECRET]).verify(built, b"{}")


# --- verification ----------------------------------------------------------------------------


def test_valid_signature_verifies() -> None:
    verifier().verify(headers(), BODY)


def test_previous_secret_is_accepted() -> None:
    verifier(SECRET, OLD_SECRET).verify(headers(secret=OLD_SECRET), BODY)


def test_header_with_several_signatures_verifies_if_any_matches() -> None:
    h = headers()
    h["webhook-signature"] = signature_header(MSG_ID, NOW, BODY, [OTHER_SECRET, SECRET])
    verifier().verify(h, BODY)


def test_unknown_secret_rejected() -> None:
    with pytest.raises(SignatureError):
        verifier().verify(headers(secret=OTHER_SECRET), BODY)


def test_tampered_body_rejected() -> None:
    with pytest.raises(SignatureError):
        verifier().verify(headers(), BODY.replace(b"a@b", b"x@b"))


def test_tampered_id_rejected() -> None:
    h = headers()
    h["webhook-id"] = "run_other"
    with pytest.raises(SignatureError):
        verifier().verify(h, BODY)


@pytest.mark.parametrize("offset", [299, 300, -299, -300, 0])
def test_timestamp_within_tolerance_accepted(offset: int) -> None:
    verifier().verify(headers(timestamp=NOW + offset), BODY)


@pytest.mark.parametrize("offset", [301, -301, 10**6, -(10**6)])
def test_timestamp_outside_tolerance_rejected(offset: int) -> None:
    with pytest.raises(SignatureError):
        verifier().verify(headers(timestamp=NOW + offset), BODY)


def test_tolerance_and_clock_are_injectable() -> None:
    v = Verifier([SECRET], tolerance=10, clock=lambda: NOW + 11)
    with pytest.raises(SignatureError):
        v.verify(headers(), BODY)
    Verifier([SECRET], tolerance=10, clock=lambda: NOW + 10).verify(headers(), BODY)


def test_header_names_are_case_insensitive() -> None:
    h = {k.upper() if i % 2 else k.title(): v for i, (k, v) in enumerate(headers().items())}
    verifier().verify(h, BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_rejected(missing: str) -> None:
    h = headers()
    del h[missing]
    with pytest.raises(SignatureError, match=missing):
        verifier().verify(h, BODY)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_empty_header_rejected(name: str) -> None:
    h = headers()
    h[name] = "  "
    with pytest.raises(SignatureError):
        verifier().verify(h, BODY)


@pytest.mark.parametrize(
    "timestamp",
    ["abc", "1700000000.5", "1.7e9", "-1700000000", "+1700000000", "0x6553F100", "١٧٠٠٠٠٠٠٠٠",
     "1700000000 1", "99999999999999999999999"],
)
def test_non_integer_timestamp_rejected(timestamp: str) -> None:
    h = headers()
    h["webhook-timestamp"] = timestamp
    with pytest.raises(SignatureError):
        verifier().verify(h, BODY)


def _good_b64() -> str:
    return sign(MSG_ID, NOW, BODY, SECRET).partition(",")[2]


@pytest.mark.parametrize(
    "signature",
    [
        "garbage",
        "v1,",
        "v1,!!!not-base64!!!",
        "v1," + "A" * 43,  # wrong length for base64
        "v1," + base64.b64encode(b"short").decode(),  # decodes, but not 32 bytes
        "v2," + "x",  # unknown version only
        "v1a," + "x" * 86,  # asymmetric scheme: not ours
        "v1," + "A" * 10_000,  # 10,000-char signature
        "v1,ü" + "A" * 43,  # non-ASCII
        ",,,, v1 , ,",
    ],
)
def test_garbled_signature_rejected(signature: str) -> None:
    h = headers()
    h["webhook-signature"] = signature
    with pytest.raises(SignatureError):
        verifier().verify(h, BODY)


def test_ten_thousand_signatures_rejected() -> None:
    h = headers()
    h["webhook-signature"] = " ".join([h["webhook-signature"]] * 10_000)
    with pytest.raises(SignatureError, match="too long"):
        verifier().verify(h, BODY)


def test_one_character_off_rejected() -> None:
    good = _good_b64()
    for i in range(len(good.rstrip("="))):
        swapped = "B" if good[i] != "B" else "C"
        bad = good[:i] + swapped + good[i + 1 :]
        h = headers()
        h["webhook-signature"] = "v1," + bad
        with pytest.raises(SignatureError):
            verifier().verify(h, BODY)


def test_non_ascii_id_rejected() -> None:
    h = headers()
    h["webhook-id"] = "run_é"
    with pytest.raises(SignatureError):
        verifier().verify(h, BODY)


@pytest.mark.parametrize("msg_id", ["run with space", "x" * 257])
def test_malformed_id_rejected(msg_id: str) -> None:
    h = signed_headers(BODY, SECRET, msg_id=msg_id, timestamp=NOW)
    with pytest.raises(SignatureError):
        verifier().verify(h, BODY)


def test_extra_whitespace_between_signatures_is_fine() -> None:
    h = headers()
    h["webhook-signature"] = f"  v2,zzz   {h['webhook-signature']}  "
    verifier().verify(h, BODY)


def test_non_utf8_body_is_just_bytes() -> None:
    body = b"\xff\xfe not utf-8"
    verifier().verify(headers(body=body), body)


# --- interoperability with the standardwebhooks package --------------------------------------


@pytest.mark.parametrize("secret", [SECRET, SECRET.removeprefix("whsec_")])
def test_standardwebhooks_verifies_our_signatures(secret: str) -> None:
    body = '{"city":"Zürich","tag":"🚒"}'.encode()
    now = int(time.time())
    built = signed_headers(body, secret, msg_id="msg_interop", timestamp=now)
    assert Webhook(secret).verify(body, built) == {"city": "Zürich", "tag": "🚒"}
    rotated = signed_headers(body, [OTHER_SECRET, secret], msg_id="msg_interop", timestamp=now)
    Webhook(secret).verify(body, rotated)


def test_standardwebhooks_rejects_our_signature_under_another_secret() -> None:
    built = signed_headers(BODY, SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, built)


@pytest.mark.parametrize("secret", [SECRET, SECRET.removeprefix("whsec_")])
def test_we_verify_standardwebhooks_signatures(secret: str) -> None:
    body = '{"city":"Zürich","sep":"a\u2028b"}'
    now = int(time.time())
    signature = Webhook(secret).sign("msg_theirs", datetime.fromtimestamp(now, UTC), body)
    h = {"Webhook-Id": "msg_theirs", "Webhook-Timestamp": str(now), "Webhook-Signature": signature}
    Verifier([SECRET]).verify(h, body.encode())
    with pytest.raises(SignatureError):
        Verifier([OTHER_SECRET]).verify(h, body.encode())


def test_same_signature_bytes_as_standardwebhooks() -> None:
    body = '{"n":12345678901234567890}'
    theirs = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(NOW, UTC), body)
    assert sign("msg_1", NOW, body.encode(), SECRET) == theirs


@pytest.mark.parametrize("signature", ["v1,AAAA", "v2,xyz", "v1," + "A" * 43])
def test_an_unusable_signature_says_no_signature_matched(signature: str) -> None:
    h = headers()
    h["webhook-signature"] = signature
    with pytest.raises(SignatureError) as info:
        verifier().verify(h, BODY)
    assert str(info.value).startswith("no signature matched: webhook-signature holds no ")


# --- settings name the secret that is not valid -------------------------------------------------


@pytest.mark.parametrize("bad", ["whsec_!!!", "12345", "whsec_not base64!"])
def test_an_invalid_signing_secret_is_named_with_the_fix(bad: str) -> None:
    from taskless.core.settings import Settings

    with pytest.raises(ConfigurationError) as info:
        Settings(signing_secret=bad).check_signing_secrets()
    message = str(info.value)
    assert message == (
        "TASKLESS_SIGNING_SECRET is not a valid signing secret (expected 'whsec_' followed by "
        "base64); set it to the job server's TASKLESS_SIGNING_SECRET (the one 'taskless dev' "
        "prints, or the one 'taskless serve' was started with)"
    )
    assert bad not in message


def test_an_empty_signing_secret_is_named() -> None:
    from taskless.core.settings import Settings

    with pytest.raises(ConfigurationError, match="^TASKLESS_SIGNING_SECRET is empty; set it"):
        Settings(signing_secret=" ").check_signing_secrets()


def test_the_bad_entry_of_the_previous_secrets_is_named() -> None:
    from taskless.core.settings import Settings

    settings = Settings(
        signing_secret=SECRET, previous_signing_secrets=(OLD_SECRET, "whsec_!!!", OTHER_SECRET)
    )
    with pytest.raises(ConfigurationError) as info:
        settings.check_signing_secrets()
    assert str(info.value) == (
        "TASKLESS_PREVIOUS_SIGNING_SECRETS: entry 2 of 3 is not a valid signing secret "
        "(expected 'whsec_' followed by base64); each comma-separated entry must be a secret "
        "the job server signed with before: fix that entry or remove it"
    )
    Settings(signing_secret=SECRET, previous_signing_secrets=(OLD_SECRET,)).check_signing_secrets()
