"""Payload encryption: key format, the wire form, rotation, and every way decryption fails."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from taskless.core.crypto import PayloadCipher, decode_key, decrypt_payload, generate_key, key_id
from taskless.core.errors import ConfigurationError, DecryptionError, MissingExtra
from taskless.core.settings import Settings

RAW = bytes(range(32))
KEY = base64.b64encode(RAW).decode()  # "AAECAwQF...HB0eHw=="
KID = hashlib.sha256(RAW).hexdigest()[:16]
OTHER = base64.b64encode(bytes(range(32, 64))).decode()
PAYLOAD = {"city": "Zürich", "tag": "🚒", "sep": "a\u2028b", "price": 10.5,
           "n": 12345678901234567890}


@pytest.mark.parametrize(
    "text",
    [
        KEY,
        KEY.rstrip("="),
        f"  {KEY}\n",
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
    ],
    ids=["standard", "unpadded", "surrounding-space", "url-safe", "url-safe-unpadded"],
)
def test_a_key_is_32_bytes_of_base64_in_either_alphabet(text: str) -> None:
    assert decode_key(text, setting="TASKLESS_ENCRYPTION_KEY") == RAW


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a valid encryption key (expected 32 random bytes in base64, 44 characters)"),
        ("not base64!", "is not a valid encryption key"),
        ("Zürich", "is not a valid encryption key"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes; an encryption key is exactly 32"),
        (base64.b64encode(bytes(64)).decode(), "decodes to 64 bytes"),
    ],
)
def test_a_bad_key_names_the_setting_and_how_to_make_one(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        decode_key(text, setting="TASKLESS_ENCRYPTION_KEY")
    assert str(caught.value).startswith("TASKLESS_ENCRYPTION_KEY ")
    assert message in str(caught.value)
    assert "secrets.token_bytes(32)" in str(caught.value)
    if text:
        assert text not in str(caught.value)


def test_a_bad_previous_key_is_named_by_its_place() -> None:
    with pytest.raises(ConfigurationError) as caught:
        PayloadCipher(KEY, (OTHER, "oops!"))
    assert str(caught.value).startswith(
        "TASKLESS_PREVIOUS_ENCRYPTION_KEYS: entry 2 of 2 is not a valid encryption key"
    )


def test_the_wire_form_is_aes_256_gcm_with_the_queue_as_associated_data() -> None:
    encrypted = PayloadCipher(KEY).encrypt(PAYLOAD, "emails")
    assert sorted(encrypted) == ["alg", "data", "iv", "kid"]
    assert encrypted["alg"] == "A256GCM"
    assert encrypted["kid"] == hashlib.sha256(RAW).hexdigest()[:16] == key_id(RAW)
    iv = base64.b64decode(encrypted["iv"], validate=True)
    data = base64.b64decode(encrypted["data"], validate=True)
    assert len(iv) == 12
    plaintext = AESGCM(RAW).decrypt(iv, data, b"emails")  # ciphertext then the 16-byte tag
    assert plaintext == json.dumps(PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode()


def test_round_trip_keeps_every_value_exact() -> None:
    cipher = PayloadCipher(KEY)
    decrypted = cipher.decrypt(cipher.encrypt(PAYLOAD, "emails"), "emails")
    assert decrypted == PAYLOAD
    assert type(decrypted["price"]) is float and type(decrypted["n"]) is int


def test_every_encryption_has_its_own_iv() -> None:
    cipher = PayloadCipher(KEY)
    ivs = {cipher.encrypt({"same": 1}, "q")["iv"] for _ in range(50)}
    assert len(ivs) == 50


def test_previous_keys_decrypt_and_never_encrypt() -> None:
    old = PayloadCipher(OTHER).encrypt(PAYLOAD, "q")
    rotated = PayloadCipher(KEY, (OTHER,))
    assert rotated.decrypt(old, "q") == PAYLOAD
    assert rotated.encrypt(PAYLOAD, "q")["kid"] == key_id(RAW)
    draining = PayloadCipher(None, (OTHER,))
    assert not draining.encrypts and draining.kid is None
    assert draining.decrypt(old, "q") == PAYLOAD
    with pytest.raises(ConfigurationError, match="TASKLESS_ENCRYPTION_KEY is not set"):
        draining.encrypt(PAYLOAD, "q")


def test_from_settings() -> None:
    assert PayloadCipher.from_settings(Settings()) is None
    cipher = PayloadCipher.from_settings(Settings(encryption_key=KEY))
    assert cipher is not None and cipher.kid == key_id(RAW)
    from_env = Settings.from_env({"TASKLESS_ENCRYPTION_KEY": KEY,
                                  "TASKLESS_PREVIOUS_ENCRYPTION_KEYS": f"{OTHER}, "})
    cipher = PayloadCipher.from_settings(from_env)
    assert cipher is not None
    assert cipher.decrypt(PayloadCipher(OTHER).encrypt(1, "q"), "q") == 1


def test_generated_keys_are_valid_and_distinct() -> None:
    keys = {generate_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(len(decode_key(k, setting="K")) == 32 for k in keys)


def sealed(**changes: str) -> dict[str, str]:
    return {**PayloadCipher(KEY).encrypt(PAYLOAD, "q"), **changes}


@pytest.mark.parametrize(
    ("encrypted", "message"),
    [
        (sealed(alg="A128GCM"), "encrypted.alg is 'A128GCM'; this version reads 'A256GCM'"),
        (sealed(kid="0123456789abcdef"),
         f"key id '0123456789abcdef', which is not TASKLESS_ENCRYPTION_KEY (its id is '{KID}')"),
        (sealed(iv="***"), "encrypted.iv and encrypted.data must be base64"),
        (sealed(data="***"), "encrypted.iv and encrypted.data must be base64"),
        (sealed(iv="AAAA"), "encrypted.iv must be 12 bytes"),
        (sealed(data="AAAA"), "encrypted.data at least 16"),
        (sealed(iv=base64.b64encode(bytes(12)).decode()), "does not decrypt with key id"),
    ],
    ids=["alg", "kid", "iv-not-base64", "data-not-base64", "iv-length", "data-length", "iv"],
)
def test_what_does_not_decrypt_says_why(encrypted: dict[str, str], message: str) -> None:
    with pytest.raises(DecryptionError) as caught:
        PayloadCipher(KEY).decrypt(encrypted, "q")
    assert message in str(caught.value)
    assert caught.value.code == "encrypted_payload"


def test_no_key_at_all_says_which_setting_to_set() -> None:
    with pytest.raises(DecryptionError) as caught:
        decrypt_payload(None, sealed(), "q")
    assert "no TASKLESS_ENCRYPTION_KEY is set here" in str(caught.value)


def test_a_plaintext_that_is_not_json_is_refused() -> None:
    iv = bytes(12)
    data = AESGCM(RAW).encrypt(iv, b"NaN", b"q")
    encrypted = {"alg": "A256GCM", "kid": key_id(RAW), "iv": base64.b64encode(iv).decode(),
                 "data": base64.b64encode(data).decode()}
    with pytest.raises(DecryptionError, match="the decrypted payload is not JSON"):
        PayloadCipher(KEY).decrypt(encrypted, "q")


def test_a_key_without_the_extra_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(MissingExtra) as caught:
        PayloadCipher(KEY)
    assert str(caught.value) == (
        "this feature needs 'cryptography', which is not installed: "
        "pip install 'taskless[encryption]'"
    )
