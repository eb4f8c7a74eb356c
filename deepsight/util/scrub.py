"""The one secret scrubber: everything a run writes goes through it.

Applied to results.json, config.yaml, Hydra's ``.hydra/*.yaml`` (and a sweep's
multirun.yaml), every log record, error files, report.md/html, and the W&B run's config,
tags, name and command line. Two rules:

- a value whose key looks like a credential (a name component ``key``, ``token``,
  ``secret``, ``password`` ... so ``hf_token``, ``api_key`` and ``engine_args.api_key`` are
  scrubbed but ``max_new_tokens`` and ``tokenizer`` are not) becomes ``"***"``. Keys ending
  in ``_env`` hold the NAME of an environment variable (``api_key_env: OPENAI_API_KEY``) and
  are kept when the value is such a name: environment values are never read into a config;
- in any string, anywhere in it (``scrub_text``): URL credentials
  (``https://user:pass@host`` -> ``https://user:***@host``, ``https://TOKEN@host`` ->
  ``https://***@host``), secret-named parameters (``?api_key=...``, ``&token=...``,
  ``password=...`` in a log line or a Hydra override), and known key shapes: OpenAI
  ``sk-...``, Anthropic ``sk-ant-...``, Hugging Face ``hf_...``, AWS ``AKIA...``/``ASIA...``,
  Google ``AIza...``, GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_...``,
  Slack ``xox?-...``, JSON web tokens, and ``Bearer``/``Basic`` authorization values.

    from deepsight.util.scrub import scrub_secrets, scrub_text
    safe = scrub_secrets(config_dict)
    line = scrub_text("GET https://u:p@host/v1?api_key=abc")  # "GET https://u:***@host/v1?api_key=***"
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_PARTS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials",
                 "auth", "authorization", "bearer", "cookie", "netrc", "private", "passphrase", "signature", "sig"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROSE_WORDS = {"key", "auth", "private", "sig", "signature", "cookie", "bearer"}  # "Key: ..." in text is prose

# Key shapes, matched anywhere (not inside a longer word). Lengths are the documented minimums or a little less.
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])("
    r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{8,}"  # OpenAI, Anthropic (sk-ant-api03-...)
    r"|hf_[A-Za-z0-9]{10,}"  # Hugging Face
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{8,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9\-]{6,}"  # Slack
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JSON web tokens
    r")(?![A-Za-z0-9])"
)
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=\-]{4,}", re.IGNORECASE)
# scheme://userinfo@ : keep a user name, drop its password; a bare userinfo (often a token) goes whole.
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.\-]*://)([^/@\s:?#'\"]*)(?::([^/@\s?#'\"]*))?@", re.IGNORECASE)
# name=value or name: value with a secret-like name (query parameters, log lines, Hydra overrides).
_NAMED_VALUE = re.compile(
    r"([A-Za-z0-9_.\-]*(?:key|token|secret|passw|pwd|credential|auth|bearer|cookie|netrc|private|sig)[A-Za-z0-9_.\-]*)"
    r"(['\"]?\s*(?:=|:(?!//))\s*)(['\"]?)([^\s&;,'\"{}\[\]()?#]+)",
    re.IGNORECASE,
)  # a name with a secret-like part: only such names may consume a value, so "Error: token=x" is caught


def _key_parts(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)  # camelCase -> camel_Case
    return [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]


def is_secret_key(key: str) -> bool:
    return any(part in _SECRET_PARTS for part in _key_parts(str(key)))


def _userinfo(m: re.Match) -> str:
    scheme, user, password = m.group(1), m.group(2), m.group(3)
    if password is None:
        return f"{scheme}{REDACTED}@" if user else m.group(0)
    return f"{scheme}{user}:{REDACTED}@"


def _named(m: re.Match) -> str:
    name, sep, quote, value = m.groups()
    if not is_secret_key(name) or value == REDACTED or value.lower() in ("bearer", "basic", "token"):
        return m.group(0)
    if name.lower().endswith("_env") and _ENV_NAME.match(value):
        return m.group(0)  # the name of an environment variable
    if ":" in sep and sep[0] not in "'\"" and name.isalpha() and set(_key_parts(name)) <= _PROSE_WORDS:
        return m.group(0)  # prose ("Key: the answer is..."), not a credential field
    return f"{name}{sep}{quote}{REDACTED}"


def scrub_text(text: str) -> str:
    """``text`` with every credential-looking part replaced by ``***`` (the rest kept as it is)."""
    if not text:
        return text
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _KEY_SHAPES.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _NAMED_VALUE.sub(_named, text)


def scrub_secrets(obj: Any, key: str | None = None) -> Any:
    """A copy of ``obj`` (nested dicts/lists) with secret-named values and secret-looking text replaced."""
    if isinstance(obj, dict):
        return {k: scrub_secrets(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_secrets(v, key) for v in obj]
    if key is not None and is_secret_key(key) and obj not in (None, "", False):
        if key.endswith("_env") and isinstance(obj, str) and _ENV_NAME.match(obj):
            return obj  # the name of an environment variable, not its value
        return REDACTED
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj


def scrub_yaml_file(path) -> bool:
    """Rewrite a YAML file (Hydra's config.yaml, hydra.yaml, overrides.yaml) scrubbed; True if it changed."""
    from pathlib import Path

    import yaml

    from deepsight.util.atomic import atomic_write_text

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    clean = scrub_secrets(data)
    if clean == data:
        return False
    atomic_write_text(path, yaml.safe_dump(clean, sort_keys=False, allow_unicode=True, default_flow_style=False))
    return True


_factory_installed = False


def install_log_scrubber() -> None:
    """Scrub every log record at creation (message, arguments and traceback), whatever handler writes it.

    A record factory rather than a handler filter: it survives Hydra's (or anyone's) logging
    configuration, so the job's .log file, the console and any later handler see scrubbed text.
    Idempotent.
    """
    import logging

    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        record.msg, record.args = scrub_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def scrub_strings(obj: Any) -> Any:
    """A copy of ``obj`` with ``scrub_text`` applied to every string (keys are kept: data, not config)."""
    if isinstance(obj, dict):
        return {k: scrub_strings(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_strings(v) for v in obj]
    return scrub_text(obj) if isinstance(obj, str) else obj


def scrub_results(results: dict[str, Any]) -> dict[str, Any]:
    """A results dict (results.json's shape) made safe to write.

    Config-like parts (the run's ``config``, ``model`` info and each scan's or benchmark's
    ``config``) get both rules; everything else (metrics, examples, reasons, warnings) gets
    the text rule only, so data keys such as MI-Peaks' ``{"token": "so"}`` stay readable.
    """
    out = scrub_strings(results)
    for key in ("config", "model"):
        if isinstance(results.get(key), dict):
            out[key] = scrub_secrets(results[key])
    for section in ("scans", "evals"):
        for name, res in (results.get(section) or {}).items():
            if isinstance(res, dict) and isinstance(res.get("config"), dict):
                out[section][name]["config"] = scrub_secrets(res["config"])
    return out
