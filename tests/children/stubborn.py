"""A child that knows nothing of tickmesh (no spec, no lifeline) and ignores SIGTERM: only
SIGKILL ends it, either the supervisor's after shutdown_timeout or PR_SET_PDEATHSIG's when the
supervisor dies."""

import signal


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
