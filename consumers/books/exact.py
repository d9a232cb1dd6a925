"""How a price or size is shown to a person: exactly as received, never rounded.

`exact(90312.28)` is "90312.28" and `exact(0.46989847)` "0.46989847" (the shortest text that
reads back as the same float, Python's repr), where a `:g` format would say 90312.3 and
0.469898; a whole number loses its ".0" (`exact(100.0)` is "100").
"""

from __future__ import annotations


def exact(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text
