"""Secrets: read from the environment only, and masked wherever text leaves the process."""

from __future__ import annotations

import logging
import os
import threading

from kpisync.errors import ConfigError

_lock = threading.Lock()
_known: set[str] = set()
MASK = "***"


def read_secret(env_var: str, *, key: str) -> str:
    """The value of `env_var`, remembered so every later message can be masked."""
    value = os.environ.get(env_var, "")
    if not value:
        raise ConfigError(
            f"{key}: environment variable {env_var} is not set",
            hint=f"export {env_var}=... before running kpisync",
        )
    remember_secret(value)
    return value


def remember_secret(value: str) -> None:
    if len(value) >= 4:
        with _lock:
            _known.add(value)


def mask(text: str) -> str:
    """`text` with every known secret replaced by ***."""
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class MaskingFilter(logging.Filter):
    """Masks secrets in every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True
