"""Driving a running simulator's test control (handlers.common.simcontrol): HTTP GET
/control/<action>?<params> on its own port, answered in JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

TIMEOUT = 5.0


def request(port: int, action: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) of one control request, whatever the status."""
    address = f"http://127.0.0.1:{port}/control/{action}?{urlencode(params)}"
    try:
        with urllib.request.urlopen(address, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def control(port: int, action: str, **params: Any) -> dict[str, Any]:
    """The answer to an action that must be applied (AssertionError if it is refused)."""
    status, answer = request(port, action, **params)
    assert status == 200 and answer["ok"], (status, answer)
    return answer


def serving(port: int) -> bool:
    """A simulator on `port` answers its test control."""
    try:
        control(port, "stats")
        return True
    except (urllib.error.URLError, ConnectionError):
        return False
