"""The bar builder: OHLCV bars from trades, at the intervals set
(`python -m tickmesh.consumers.bars`).

    bars        the process: its settings, trades in, bars out
    aggregate   trades in, closed bars out, with the clock passed in (pure)

`main` and `Settings` are the process's, loaded on first use (consumers.process_attributes).
"""

from tickmesh.consumers import process_attributes

__getattr__ = process_attributes(__name__, f"{__name__}.bars")
