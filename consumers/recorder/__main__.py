"""`python -m tickmesh.consumers.recorder`: the recorder (`recorder.main`)."""

from __future__ import annotations

from tickmesh.consumers.recorder.recorder import main

if __name__ == "__main__":
    main()
