"""The forwarder: libzmq's own proxy between an XSUB (publishers connect) and an XPUB
(subscribers connect). Run as the supervisor's first child: `python -m bus.forwarder`.

The XPUB's send high-water mark is per subscriber: a slow subscriber loses its own messages
at that mark and nobody else is affected. The XSUB subscribes to everything, so that every
publisher learns at connect time that the forwarder is there (see bus.publisher).
"""

from __future__ import annotations

import os

import zmq

from bus import process

DEFAULT_HWM = 100_000
SUBSCRIBE_ALL = b"\x01"


def serve(publish: str, subscribe: str, hwm: int = DEFAULT_HWM) -> None:
    """Bind both sides and proxy until the process is signalled."""
    context = zmq.Context.instance()
    frontend = context.socket(zmq.XSUB)
    frontend.setsockopt(zmq.RCVHWM, hwm)
    frontend.setsockopt(zmq.LINGER, 0)
    backend = context.socket(zmq.XPUB)
    backend.setsockopt(zmq.SNDHWM, hwm)
    backend.setsockopt(zmq.LINGER, 0)
    for socket, endpoint in ((frontend, publish), (backend, subscribe)):
        process.prepare_endpoint(endpoint)
        socket.bind(endpoint)
    frontend.send(SUBSCRIBE_ALL)
    zmq.proxy(frontend, backend)


def main() -> None:
    spec = process.child_spec()
    process.configure_logging(spec.name)
    process.exit_with_parent()
    hwm = int(spec.settings.get("hwm", DEFAULT_HWM))
    process.log().info("forwarder starting", publish=spec.bus.publish, subscribe=spec.bus.subscribe)
    try:
        serve(spec.bus.publish, spec.bus.subscribe, hwm)
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
