"""A child dies with its supervisor: the kernel sends it SIGKILL when its parent, the keeper
(runtime.keeper, which dies with the supervisor), dies (PR_SET_PDEATHSIG, Linux). The keeper
asks for it between fork and exec; a child calls `exit_with_parent()` too, which also catches a
parent that died before that took effect."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from tickmesh.runtime.spec import PARENT_ENV

PR_SET_PDEATHSIG = 1


def exit_with_parent() -> None:
    expected = os.environ.get(PARENT_ENV)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected and os.getppid() != int(expected):
        os._exit(1)
