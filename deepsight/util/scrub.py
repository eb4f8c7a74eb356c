"""Remove secrets from a config before it is logged (W&B) or shown (report).

A value is replaced by ``"***"`` when its key looks like a credential (a name
component ``key``, ``token``, ``secret``, ``password`` ... so ``hf_token`` and
``api_key`` are scrubbed but ``max_new_tokens`` and ``tokenizer`` are not) or when
the value itself looks like one (``sk-...``, ``hf_...``, ``Bearer ...``, a URL with a
password). Keys ending in ``_env`` hold the NAME of an environment variable
(``api_key_env: OPENAI_API_KEY``) and are kept when the value is such a name:
environment values are never read into a config.

    from deepsight.util.scrub import scrub_secrets
    safe = scrub_secrets(config_dict)
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_PARTS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials",
                 "auth", "authorization", "bearer", "cookie", "netrc", "private"}
_SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|xox[abpr]-\S+|"
                           r"Bearer\s+\S+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.\-]*://[^/:@\s]*):[^@/\s]+@", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _key_parts(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)  # camelCase -> camel_Case
    return [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]


def is_secret_key(key: str) -> bool:
    return any(part in _SECRET_PARTS for part in _key_parts(str(key)))


def _scrub_value(value: str) -> str:
    if _SECRET_VALUE.match(value.strip()):
        return REDACTED
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", value)


def scrub_secrets(obj: Any, key: str | None = None) -> Any:
    """A copy of ``obj`` (nested dicts/lists) with secret-looking values replaced by ``"***"``."""
    if isinstance(obj, dict):
        return {k: scrub_secrets(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_secrets(v, key) for v in obj]
    if key is not None and is_secret_key(key) and obj not in (None, "", False):
        if key.endswith("_env") and isinstance(obj, str) and _ENV_NAME.match(obj):
            return obj  # the name of an environment variable, not its value
        return REDACTED
    if isinstance(obj, str):
        return _scrub_value(obj)
    return obj
