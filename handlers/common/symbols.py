"""Crypto symbols in one form across venues: `BASE-QUOTE`, upper case (`BTC-USD`, `BTC-USDT`,
`ETH-BTC`). Every crypto handler takes its symbols in this form in its settings, publishes
events under it, and keeps the venue's own spelling in the event's `native_symbol`: Binance's
`BTCUSDT` is `BTC-USDT` on the bus, Coinbase's `BTC-USD` stays as it is. So `*.*.BTC-USDT`
means the same thing at every venue. Equity symbols stay as their provider spells them.
Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Iterable

from tickmesh.runtime.settings import SettingsError

_ASSET = r"[A-Z0-9]{1,20}"
_CRYPTO = re.compile(rf"^({_ASSET})-({_ASSET})$")


def split_crypto(symbol: str) -> tuple[str, str]:
    """("BTC", "USDT") of "BTC-USDT"; ValueError for anything not in the normalized form."""
    match = _CRYPTO.match(symbol)
    if not match:
        raise ValueError(f"{symbol!r} is not a crypto symbol in the form BASE-QUOTE "
                         "(upper case, e.g. BTC-USDT)")
    return match.group(1), match.group(2)


def joined(symbol: str) -> str:
    """The venue form without a separator: BTC-USDT -> BTCUSDT (Binance's)."""
    base, quote = split_crypto(symbol)
    return base + quote


def check_settings(symbols: Iterable[str], key: str = "symbols") -> None:
    """A settings check: every symbol in the normalized form, or the SettingsError naming
    `key` (for a handler's or simulator's settings dataclass)."""
    for symbol in symbols:
        try:
            split_crypto(symbol)
        except ValueError as exc:
            raise SettingsError(f"settings.{key}: {exc}") from None
