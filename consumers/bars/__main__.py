"""`python -m tickmesh.consumers.bars`: the bar builder (`bars.main`)."""

from __future__ import annotations

from tickmesh.consumers.bars.bars import main

if __name__ == "__main__":
    main()
