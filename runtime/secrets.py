"""Secrets (API keys) come from environment variables and are kept out of every log line:
each one read through here is remembered, and `redact` replaces it wherever it appears."""

from __future__ import annotations

import os

PLACEHOLDER_CREDENTIAL = "tickmesh-demo"
"""Sent when a credential's variable is unset: the simulators accept any credentials."""
MASK = "***"

_secrets: set[str] = set()


def secret_from_env(variable: str, default: str = "") -> str:
    """Read a secret from the environment and make sure no log line ever shows it."""
    value = os.environ.get(variable, default)
    if value:
        _secrets.add(value)
    return value


def credential(variable: str) -> str:
    """The secret in `variable`, or the placeholder if it is unset (the caller says so)."""
    return secret_from_env(variable) or PLACEHOLDER_CREDENTIAL


def redact(text: str) -> str:
    """`text` with every known secret masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
