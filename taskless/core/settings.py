"""Settings shared by the app side and the job server, read from ``TASKLESS_*`` variables.

Nothing is read at import time: call :meth:`Settings.from_env`. In development every setting
has a default that matches ``taskless dev``; in production a missing secret is an error that
names the variable.
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

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Read ``TASKLESS_*`` from ``environ`` (default ``os.environ``); ``overrides`` win.

        Raises :class:`ConfigurationError` naming the variable when production lacks a secret.
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
        for key, var in (("api_key", "TASKLESS_API_KEY"), ("signing_secret", "TASKLESS_SIGNING_SECRET")):
            if not values[key]:
                raise ConfigurationError(
                    f"{var} is not set; production needs it (or set TASKLESS_ENV=development)"
                )
        return cls(**values)
