"""Payload encryption: the app encrypts, the job server stores and forwards ciphertext only.

With ``TASKLESS_ENCRYPTION_KEY`` set, a queue sends ``"encrypted": {"alg": "A256GCM", "kid",
"iv", "data"}`` in place of ``"payload"``; the job server never sees the plaintext. The
receiver (and ``Queue.get``) decrypts with the current key or one of
``TASKLESS_PREVIOUS_ENCRYPTION_KEYS``, picked by ``kid``.

- A key is 32 random bytes in base64 (standard or URL-safe alphabet, padding optional).
- ``kid`` is the first 16 hex digits of the key's SHA-256: it tells which key to use and
  says nothing useful about the key.
- ``iv`` is 12 random bytes per encryption; ``data`` is the AES-256-GCM ciphertext of the
  payload's compact JSON, followed by the 16-byte tag; both in standard base64.
- The queue's name is the associated data: a payload copied into a job of another queue does
  not decrypt.

AES-GCM comes from the ``cryptography`` package (``pip install 'taskless[encryption]'``),
imported only when a key is set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .errors import ConfigurationError, DecryptionError, MissingExtra

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["ALGORITHM", "KEY_HINT", "PayloadCipher", "generate_key", "key_id"]

ALGORITHM: Final = "A256GCM"
KEY_BYTES: Final = 32
IV_BYTES: Final = 12
TAG_BYTES: Final = 16

KEY_HINT: Final = (
    "generate one with: python -c \"import base64, secrets; "
    "print(base64.b64encode(secrets.token_bytes(32)).decode())\""
)


def generate_key() -> str:
    """A new random key, as ``TASKLESS_ENCRYPTION_KEY`` takes it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """The ``kid`` of a raw 32-byte key."""
    return hashlib.sha256(key).hexdigest()[:16]


def decode_key(text: str, *, setting: str) -> bytes:
    """The 32 bytes of a key given in base64; :class:`ConfigurationError` naming ``setting``
    (never showing the key) otherwise."""
    cleaned = text.strip()
    raw: bytes | None = None
    if cleaned and cleaned.isascii():
        standard = cleaned.replace("-", "+").replace("_", "/")  # the URL-safe alphabet too
        try:
            raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        raise ConfigurationError(
            f"{setting} is not a valid encryption key (expected 32 random bytes in base64, "
            f"44 characters); {KEY_HINT}"
        )
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(
            f"{setting} decodes to {len(raw)} bytes; an encryption key is exactly {KEY_BYTES} "
            f"bytes (44 base64 characters); {KEY_HINT}"
        )
    return raw


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise MissingExtra("encryption", "cryptography") from None
    return AESGCM(key)


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: Any  # cryptography's AESGCM


class PayloadCipher:
    """Encrypts with the current key, decrypts with any key it holds.

    Build it with :meth:`from_settings` (``None`` when no key is set) or from key strings.
    """

    def __init__(self, current: str | None, previous: tuple[str, ...] = ()) -> None:
        keys: list[tuple[str, bytes]] = []
        if current is not None:
            keys.append(("", decode_key(current, setting="TASKLESS_ENCRYPTION_KEY")))
        total = len(previous)
        for number, text in enumerate(previous, 1):
            setting = f"TASKLESS_PREVIOUS_ENCRYPTION_KEYS: entry {number} of {total}"
            keys.append(("previous", decode_key(text, setting=setting)))
        if not keys:
            raise ConfigurationError(
                f"no encryption key: set TASKLESS_ENCRYPTION_KEY; {KEY_HINT}"
            )
        self._current: _Key | None = None
        self._by_kid: dict[str, _Key] = {}
        for role, raw in keys:
            entry = _Key(key_id(raw), _aesgcm(raw))
            if role == "" and self._current is None:
                self._current = entry
            self._by_kid.setdefault(entry.kid, entry)

    @classmethod
    def from_settings(cls, settings: Settings) -> PayloadCipher | None:
        """The cipher of ``settings``, or ``None`` when neither ``TASKLESS_ENCRYPTION_KEY``
        nor ``TASKLESS_PREVIOUS_ENCRYPTION_KEYS`` is set. Raises
        :class:`ConfigurationError` for a key that is not one."""
        if settings.encryption_key is None and not settings.previous_encryption_keys:
            return None
        return cls(settings.encryption_key, settings.previous_encryption_keys)

    @property
    def encrypts(self) -> bool:
        """Whether new payloads are encrypted (a current key is set, not only previous
        ones)."""
        return self._current is not None

    @property
    def kid(self) -> str | None:
        """The ``kid`` of the current key."""
        return None if self._current is None else self._current.kid

    def encrypt(self, payload: Any, queue: str) -> dict[str, str]:
        """The ``encrypted`` object for a JSON-ready ``payload`` of ``queue``."""
        if self._current is None:
            raise ConfigurationError(
                "TASKLESS_ENCRYPTION_KEY is not set (only previous keys are): nothing to "
                "encrypt with"
            )
        plaintext = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        iv = os.urandom(IV_BYTES)
        data = self._current.aead.encrypt(iv, plaintext, queue.encode("utf-8"))
        return {
            "alg": ALGORITHM,
            "kid": self._current.kid,
            "iv": base64.b64encode(iv).decode("ascii"),
            "data": base64.b64encode(data).decode("ascii"),
        }

    def decrypt(self, encrypted: Mapping[str, Any], queue: str) -> Any:
        """The payload inside an ``encrypted`` object of ``queue``. Raises
        :class:`DecryptionError` saying what is wrong and how to fix it."""
        return _decrypt(self, encrypted, queue)

    def _key(self, kid: str) -> _Key | None:
        return self._by_kid.get(kid)


def _decrypt(cipher: PayloadCipher | None, encrypted: Mapping[str, Any], queue: str) -> Any:
    from cryptography.exceptions import InvalidTag

    alg, kid = encrypted.get("alg"), encrypted.get("kid")
    if alg != ALGORITHM:
        raise DecryptionError(f"encrypted.alg is {alg!r}; this version reads {ALGORITHM!r}")
    key = None if cipher is None else cipher._key(str(kid))
    if key is None:
        current = "" if cipher is None or cipher.kid is None else f" (its id is {cipher.kid!r})"
        raise DecryptionError(
            f"the payload was encrypted with key id {kid!r}, which is not "
            f"TASKLESS_ENCRYPTION_KEY{current} nor in TASKLESS_PREVIOUS_ENCRYPTION_KEYS: set "
            "that key in one of them"
        )
    try:
        iv = base64.b64decode(str(encrypted.get("iv")), validate=True)
        data = base64.b64decode(str(encrypted.get("data")), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("encrypted.iv and encrypted.data must be base64") from None
    if len(iv) != IV_BYTES or len(data) < TAG_BYTES:
        raise DecryptionError(
            f"encrypted.iv must be {IV_BYTES} bytes and encrypted.data at least {TAG_BYTES}"
        )
    try:
        plaintext = key.aead.decrypt(iv, data, queue.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError(
            f"the payload does not decrypt with key id {kid!r}: it was altered, or encrypted "
            f"for another queue than {queue!r}"
        ) from None
    try:
        return json.loads(plaintext.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DecryptionError("the decrypted payload is not JSON") from None


def decrypt_payload(cipher: PayloadCipher | None, encrypted: Mapping[str, Any], queue: str) -> Any:
    """Decrypt with ``cipher``, which may be ``None`` (no key set: a clear error)."""
    if cipher is None:
        raise DecryptionError(
            f"the payload is encrypted (key id {encrypted.get('kid')!r}) and no "
            "TASKLESS_ENCRYPTION_KEY is set here: set it (or "
            "TASKLESS_PREVIOUS_ENCRYPTION_KEYS) to the key the job was enqueued with"
        )
    return _decrypt(cipher, encrypted, queue)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
