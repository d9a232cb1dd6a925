"""The order-book builder: every provider's L2 books, rebuilt from the bus, each either correct
or visibly stale (`python -m tickmesh.consumers.books`).

    builder     the process: its settings, the books fed from the bus, what it publishes
    state       one book's life as a state machine (pure)
    orderbook   one L2 book's levels (pure)
    snapshots   the snapshot service a late joiner asks for a whole book, and its client
    exact       how a price or size is shown: as received, never rounded

`main` and `Settings` are the builder's, loaded on first use (consumers.process_attributes).
"""

from tickmesh.consumers import process_attributes

__getattr__ = process_attributes(__name__, f"{__name__}.builder")
