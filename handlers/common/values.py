"""The value rules every normalizer applies before an event reaches the bus, and a tolerant
reader for JSON frames that strict JSON cannot read. Pure: no I/O.

A normalizer drops a message whose numbers cannot be real market data, counts it under
`bad_input{reason=...}` (the reason is what these functions return) and keeps the rest of its
frame:

- `non_finite`: a NaN or an infinite price, size, volume or VWAP;
- `bad_price`: a trade price or bar price <= 0; a quote price < 0, or 0 with a size (a side of
  a quote may be empty: price 0 and size 0, as the providers send it);
- `bad_size`: a negative size or volume;
- `bad_bar`: a bar whose high is below its low, or whose open or close is outside them;
- `bad_time` (ts_event <= 0), `bad_symbol` (empty) and `unsubscribed` (a symbol this
  connection never subscribed): checked by the protocols, which know the time and the
  subscription.

A crossed or locked quote (bid >= ask, both sides present) is real market data (consolidated
quotes do lock and cross): it is published, and counted in `quotes_crossed{provider}`.

NaN, Infinity and -Infinity are not JSON, and a number such as 1e999 does not fit a double:
`read_json` reads the first three as the floats they name and an out-of-range number as ±inf,
so that such a message is dropped as `non_finite` by the rules above, not lost as garbage
with the rest of its frame.

`Price`, `Size` and `QuotePrice` say the same as msgspec constraints, for wire structs whose
decoder should check them in C, on the hot path.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Annotated, Any

import msgspec

MAX_FLOAT = sys.float_info.max

Price = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_FLOAT)]
"""A finite price > 0 (NaN fails `gt`, +inf fails `le`, -inf fails `gt`)."""
Size = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_FLOAT)]
"""A finite size >= 0."""
QuotePrice = Size
"""A finite quote price >= 0 (0: an empty side)."""

NON_FINITE = "non_finite"
BAD_PRICE = "bad_price"
BAD_SIZE = "bad_size"
BAD_BAR = "bad_bar"
BAD_TIME = "bad_time"
BAD_SYMBOL = "bad_symbol"
UNSUBSCRIBED = "unsubscribed"
MALFORMED = "malformed"


def _is_number(x: Any) -> bool:
    return type(x) is float or type(x) is int


def size_problem(size: Any) -> str:
    if not _is_number(size):
        return MALFORMED
    if not math.isfinite(size):
        return NON_FINITE
    return BAD_SIZE if size < 0 else ""


def price_problem(price: Any) -> str:
    """A trade's or a bar's price: finite and > 0."""
    if not _is_number(price):
        return MALFORMED
    if not math.isfinite(price):
        return NON_FINITE
    return BAD_PRICE if price <= 0 else ""


def trade_problem(price: Any, size: Any) -> str:
    """"" for a good trade, else the reason to drop it."""
    return price_problem(price) or size_problem(size)


def quote_problem(bid_price: Any, bid_size: Any, ask_price: Any, ask_size: Any) -> str:
    """"" for a good quote, else the reason to drop it. A side may be empty (0 and 0)."""
    for price, size in ((bid_price, bid_size), (ask_price, ask_size)):
        problem = size_problem(size)
        if not problem:
            if not _is_number(price):
                problem = MALFORMED
            elif not math.isfinite(price):
                problem = NON_FINITE
            elif price < 0 or (price == 0 and size != 0):
                problem = BAD_PRICE
        if problem:
            return problem
    return ""


def crossed(bid_price: float, ask_price: float) -> bool:
    """Locked or crossed: both sides present and bid >= ask (published, but counted)."""
    return 0 < ask_price <= bid_price


def bar_problem(open_: Any, high: Any, low: Any, close: Any, volume: Any,
                vwap: Any = 0.0) -> str:
    """"" for a good bar, else the reason to drop it (vwap 0: none given)."""
    for price in (open_, high, low, close):
        problem = price_problem(price)
        if problem:
            return problem
    problem = size_problem(volume)
    if problem:
        return problem
    if not _is_number(vwap):
        return MALFORMED
    if not math.isfinite(vwap):
        return NON_FINITE
    if vwap < 0:
        return BAD_PRICE
    if high < low or not (low <= open_ <= high and low <= close <= high):
        return BAD_BAR
    return ""


# --- JSON that strict JSON cannot read --------------------------------------------------------

_STRUCTURE = re.compile(rb'["\\\[\]{},]')
_WHITESPACE = b" \t\r\n"


def split_json_array(data: bytes) -> list[bytes]:
    """The raw elements of a top-level JSON array, by a tolerant scan that follows strings and
    nesting but validates no token: `[{"p":NaN},{"p":1}]` -> [b'{"p":NaN}', b'{"p":1}']. A
    truncated array gives its complete elements and then the fragment (b"" if none), text
    after the array one more element: what cannot be read is counted. ValueError if `data`
    does not start (after whitespace) with `[`. No recursion: any depth of nesting is fine."""
    data = bytes(data)
    start = len(data) - len(data.lstrip(_WHITESPACE))
    if data[start:start + 1] != b"[":
        raise ValueError("not a JSON array")
    elements: list[bytes] = []
    begin, depth, in_string, escaped_until = start + 1, 0, False, -1
    for found in _STRUCTURE.finditer(data, start + 1):
        at = found.start()
        if at < escaped_until:
            continue
        char = data[at]
        if in_string:
            if char == 0x5C:  # backslash: skip the next byte
                escaped_until = at + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in b"[{":
            depth += 1
        elif char in b"]}" and depth:
            depth -= 1
        elif char == 0x5D:  # the array's own `]`
            _append(elements, data[begin:at])
            _append(elements, data[at + 1:])  # anything after it: garbage, to be counted
            return elements
        elif char == 0x2C and not depth:
            _append(elements, data[begin:at])
            begin = at + 1
    elements.append(data[begin:].strip(_WHITESPACE))  # truncated: even an empty fragment
    return elements


def _append(elements: list[bytes], element: bytes) -> None:
    element = element.strip(_WHITESPACE)
    if element:
        elements.append(element)


def read_json(data: bytes) -> Any:
    """One JSON value, reading NaN, Infinity and -Infinity as floats and an out-of-range
    number as ±inf (see the module's docstring). ValueError if it cannot be read."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deep") from None
