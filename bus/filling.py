"""Gap fill in the stream: a subscriber with `fill_gaps=True` asks the recorder (bus.gapfill,
the client) for the messages of a gap when its fill request reaches the head of the stream, and
puts what it got, in sequence order, where the gap was: the recorded messages of the gap's
publisher epoch, and a Gap for each range the recorder did not have (the whole gap if no
recorder answered).
"""

from __future__ import annotations

from typing import Callable

from tickmesh.bus.gapfill import Fill, GapFiller, GapFillUnavailable
from tickmesh.bus.messages import Item
from tickmesh.bus.sequence import Gap


def fetch(filler: GapFiller, gap: Gap) -> Fill | None:
    """What the recorder has of `gap`; None if none answered."""
    try:
        return filler.fetch(gap.topic, gap.epoch, gap.expected, gap.received - 1)
    except GapFillUnavailable:
        return None


def filled(gap: Gap, fill: Fill | None,
           convert: Callable[[bytes, bytes], Item | None]) -> tuple[list[Item | Gap], int]:
    """What takes the place of `gap` in the stream, in sequence order, and how many recorded
    messages are among it."""
    messages = []
    for payload in fill.payloads if fill else ():
        message = convert(gap.topic, payload)
        if message is not None and message.epoch == gap.epoch:
            messages.append(message)
    missing = fill.missing if fill else [(gap.expected, gap.received - 1)]
    items = sorted([(first, 0, Gap(gap.topic, first, last + 1, gap.epoch))
                    for first, last in missing] + [(m.seq, 1, m) for m in messages],
                   key=lambda item: item[:2])
    return [item for _seq, _order, item in items], len(messages)
