"""Settings shared by the app side and the job server, read from ``TASKLESS_*`` variables.

Nothing is read at import time: call :meth:`Settings.from_env`. In development every setting
has a default that matches ``taskless dev``; in production a missing secret is an error that
names the variable (the signing secret at once, the API key when a queue calls the job server).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigurationError

DEV_API_KEY = "taskless-dev-api-key"
DEV_SIGNING_SECRET = "whsec_dGFza2xlc3MtZGV2ZWxvcG1lbnQtc2lnbmluZy1rZXk="
DEV_URL = "http://127.0.0.1:3001"
DEV_BASE_URL = "http://127.0.0.1:8000"
DEV_DATABASE = "sqlite:///.taskless/taskless.db"

DEVELOPMENT = "development"
PRODUCTION = "production"

#: The shortest API key a production job server accepts.
MIN_API_KEY_LENGTH = 16
#: The fewest key bytes a production signing secret may decode to (Standard Webhooks
#: secrets have 24 to 64).
MIN_SIGNING_KEY_BYTES = 24

API_KEY_HINT = (
    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
)
SIGNING_SECRET_HINT = (
    "generate one ('whsec_' followed by base64) with: python -c \"import base64, secrets; "
    "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\""
)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :meth:`from_env`; override with :meth:`replace`."""

    env: str = DEVELOPMENT
    api_key: str = DEV_API_KEY
    signing_secret: str = DEV_SIGNING_SECRET
    previous_signing_secrets: tuple[str, ...] = ()
    url: str = DEV_URL
    base_url: str = DEV_BASE_URL
    encryption_key: str | None = None
    previous_encryption_keys: tuple[str, ...] = ()
    database: str = DEV_DATABASE
    allowed_endpoints: tuple[str, ...] = field(default=())

    @property
    def is_development(self) -> bool:
        return self.env == DEVELOPMENT

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """The current secret first, then the previous ones (all accepted by receivers)."""
        return (self.signing_secret, *self.previous_signing_secrets)

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def require_api_key(self) -> str:
        """The API key, or :class:`ConfigurationError` naming ``TASKLESS_API_KEY`` when
        production has none. Called when a transport to the job server is built."""
        if not self.api_key and not self.is_development:
            raise ConfigurationError(
                "TASKLESS_API_KEY is not set; production needs it to call the job server "
                "(enqueue, update, get, delete): set it to the key the job server was started "
                "with"
            )
        return self.api_key

    def check_signing_secrets(self) -> None:
        """Raise :class:`ConfigurationError` if a signing secret is empty or not
        ``whsec_<base64>``, naming the setting (``TASKLESS_SIGNING_SECRET``, or which entry of
        ``TASKLESS_PREVIOUS_SIGNING_SECRETS``) and the fix. The message never shows a secret.
        Receivers call this when they are built from settings."""
        from .signing import decode_secret

        expected = "expected 'whsec_' followed by base64"
        current = self.signing_secret
        fix = (
            "set it to the job server's TASKLESS_SIGNING_SECRET (the one 'taskless dev' prints, "
            "or the one 'taskless serve' was started with)"
        )
        if not current or not current.strip():
            raise ConfigurationError(f"TASKLESS_SIGNING_SECRET is empty; {fix}")
        try:
            decode_secret(current)
        except ConfigurationError:
            raise ConfigurationError(
                f"TASKLESS_SIGNING_SECRET is not a valid signing secret ({expected}); {fix}"
            ) from None
        total = len(self.previous_signing_secrets)
        for number, secret in enumerate(self.previous_signing_secrets, 1):
            try:
                decode_secret(secret)
            except ConfigurationError:
                raise ConfigurationError(
                    f"TASKLESS_PREVIOUS_SIGNING_SECRETS: entry {number} of {total} is not a valid "
                    f"signing secret ({expected}); each comma-separated entry must be a secret "
                    "the job server signed with before: fix that entry or remove it"
                ) from None

    def production_problems(self) -> list[str]:
        """What keeps these settings from running a production job server, one line per
        variable (empty when nothing does): a missing, development or weak API key or signing
        secret, a previous signing secret that is not one. The allowed endpoints are checked
        by the job server itself."""
        from .signing import decode_secret

        problems = []
        key = self.api_key
        if not key:
            problems.append(f"TASKLESS_API_KEY is not set; {API_KEY_HINT}")
        elif not key.strip():
            problems.append(f"TASKLESS_API_KEY is blank (only whitespace); {API_KEY_HINT}")
        elif not (key.isascii() and key.isprintable()) or key != key.strip():
            # Clients send it in the Authorization header, which cannot carry these (and drops
            # spaces at the ends): every request would be refused.
            problems.append(
                "TASKLESS_API_KEY holds characters an HTTP header cannot carry (non-ASCII, "
                f"control characters or spaces at its ends); {API_KEY_HINT}"
            )
        elif key == DEV_API_KEY:
            problems.append(f"TASKLESS_API_KEY is the development key; {API_KEY_HINT}")
        elif len(key) < MIN_API_KEY_LENGTH:
            problems.append(
                f"TASKLESS_API_KEY is too short ({len(key)} characters, at least "
                f"{MIN_API_KEY_LENGTH}); {API_KEY_HINT}"
            )
        named = [("TASKLESS_SIGNING_SECRET", self.signing_secret)] + [
            ("TASKLESS_PREVIOUS_SIGNING_SECRETS", s) for s in self.previous_signing_secrets
        ]
        for variable, secret in named:
            if not secret:
                problems.append(f"{variable} is not set; {SIGNING_SECRET_HINT}")
                continue
            if secret == DEV_SIGNING_SECRET:
                problems.append(f"{variable} holds the development secret; {SIGNING_SECRET_HINT}")
                continue
            try:
                size = len(decode_secret(secret))
            except ConfigurationError:
                problems.append(
                    f"{variable} is not a valid signing secret (expected 'whsec_' followed by "
                    f"base64); {SIGNING_SECRET_HINT}"
                )
                continue
            # Previous secrets are only accepted by apps while they rotate out: a short one
            # may be on its way out, so only the current one must be long enough.
            if variable == "TASKLESS_SIGNING_SECRET" and size < MIN_SIGNING_KEY_BYTES:
                problems.append(
                    f"{variable} is too short ({size} bytes once base64-decoded, at least "
                    f"{MIN_SIGNING_KEY_BYTES}); {SIGNING_SECRET_HINT}"
                )
        return problems

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        require_secrets: bool = True,
        **overrides: Any,
    ) -> Settings:
        """Read ``TASKLESS_*`` from ``environ`` (default ``os.environ``); ``overrides`` win.

        Raises :class:`ConfigurationError` naming ``TASKLESS_SIGNING_SECRET`` when production
        lacks it; with ``require_secrets=False`` it is left empty instead (to report it along
        with other problems, see :meth:`production_problems`). A missing ``TASKLESS_API_KEY``
        is left empty: only calls to the job server need it (:meth:`require_api_key`).
        """
        env_vars = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env_vars.get(f"TASKLESS_{name}")
            return value if value not in (None, "") else None

        env = (overrides.get("env") or get("ENV") or DEVELOPMENT).lower()
        if env not in (DEVELOPMENT, PRODUCTION):
            raise ConfigurationError(
                f"TASKLESS_ENV must be 'development' or 'production', not {env!r}"
            )
        dev = env == DEVELOPMENT
        values: dict[str, Any] = {
            "env": env,
            "api_key": get("API_KEY") or (DEV_API_KEY if dev else None),
            "signing_secret": get("SIGNING_SECRET") or (DEV_SIGNING_SECRET if dev else None),
            "previous_signing_secrets": _split(get("PREVIOUS_SIGNING_SECRETS")),
            "url": get("URL") or DEV_URL,
            "base_url": get("BASE_URL") or DEV_BASE_URL,
            "encryption_key": get("ENCRYPTION_KEY"),
            "previous_encryption_keys": _split(get("PREVIOUS_ENCRYPTION_KEYS")),
            "database": get("DATABASE") or DEV_DATABASE,
            "allowed_endpoints": _split(get("ALLOWED_ENDPOINTS")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        # The signing secret is needed by every app (to verify deliveries); the API key only to
        # call the job server, so a missing one is an error when a queue sends (see
        # require_api_key), not here: an app that only receives jobs needs no key.
        if not values["signing_secret"] and require_secrets:
            raise ConfigurationError(
                "TASKLESS_SIGNING_SECRET is not set; production needs it (or set "
                "TASKLESS_ENV=development)"
            )
        values["api_key"] = values["api_key"] or ""
        values["signing_secret"] = values["signing_secret"] or ""
        return cls(**values)
