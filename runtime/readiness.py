"""A child tells the supervisor it is ready (a simulator once it listens, the forwarder once
it is bound) by writing to the pipe whose descriptor is in TICKMESH_READY_FD, in the manner of
systemd's sd_notify. The supervisor starts the children that wait for it (`after` in the
config) only then, or once its bounded wait is over. Without the variable (a child started by
hand or by a test), saying ready does nothing."""

from __future__ import annotations

import os

from tickmesh.runtime.spec import READY_FD_ENV

READY = b"ready\n"


def announce_ready() -> None:
    """Say "ready" once; later calls do nothing."""
    fd = os.environ.pop(READY_FD_ENV, "")
    if not fd:
        return
    try:
        os.write(int(fd), READY)
        os.close(int(fd))
    except (OSError, ValueError):
        pass  # the supervisor stopped listening: nothing to tell
