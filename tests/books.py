"""Order books as tests keep them: a (bids, asks) pair of {price: size} dicts, changed level by
level, and the books a reader of the bus builds from BookSnapshot and BookDelta events."""

from __future__ import annotations

from typing import Iterable

from tickmesh.bus import BookDelta, BookSnapshot

Book = tuple[dict[float, float], dict[float, float]]
"""(bids, asks), each {price: size}."""


def apply_levels(book: Book, bids: Iterable[tuple[float, float]],
                 asks: Iterable[tuple[float, float]]) -> None:
    """Set each (price, size) level of `bids` and `asks` on its side of `book`; a size of 0
    removes the level."""
    for side, levels in zip(book, (bids, asks)):
        for price, size in levels:
            if size:
                side[price] = size
            else:
                side.pop(price, None)


def implied_books(events: Iterable) -> dict[str, Book]:
    """Each symbol's book as a reader of the bus builds it from `events`: a BookSnapshot
    replaces it, and each BookDelta after it applies (one of another generation fails the
    test); deltas before a symbol's first snapshot are ignored."""
    books: dict[str, tuple[Book, int]] = {}
    for event in events:
        if isinstance(event, BookSnapshot):
            books[event.symbol] = (dict(event.bids), dict(event.asks)), event.generation
        elif isinstance(event, BookDelta) and event.symbol in books:
            book, generation = books[event.symbol]
            assert event.generation == generation
            apply_levels(book, event.bids, event.asks)
    return {symbol: book for symbol, (book, _) in books.items()}
