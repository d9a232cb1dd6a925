"""Secrets (API keys) come from environment variables and are kept out of every log line:
each one read through here is remembered, and `redact` replaces it wherever it appears.

Text that leaves a process (a log line, a Status message, a control answer) is masked first
and cut after. Should some code cut it before (a frame shown as `frame[:80]`), `redact` still
masks what is left of a secret: its first FRAGMENT characters or more, wherever they are."""

from __future__ import annotations

import os

PLACEHOLDER_CREDENTIAL = "tickmesh-demo"
"""Sent when a credential's variable is unset: the simulators accept any credentials."""
MASK = "***"
FRAGMENT = 8
"""A secret's first characters that are masked even without the rest (a secret cut short)."""

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
    """`text` with every known secret masked, and every start of one (FRAGMENT characters or
    more, as far as it matches the secret): what a cut before masking left of it."""
    for secret in _secrets:
        head = secret[:FRAGMENT]
        start = text.find(head)
        while start >= 0:
            end = start + len(head)
            while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
                end += 1
            text = text[:start] + MASK + text[end:]
            start = text.find(head, start + len(MASK))
    return text
