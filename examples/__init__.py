"""Small consumers to copy from, each tested against a real bus (tests/test_examples.py).

    spread.py            a spread monitor: a function consumer (runtime.consumer)
    anomaly.py           a trade-anomaly flagger: a class consumer (runtime.consumer)
    plain_subscriber.py  pyzmq + msgpack only, no tickmesh code: the wire format on its own

They are installed with the package (tickmesh.examples), so they run from any directory:

    tickmesh consume tickmesh.examples.spread:monitor
    tickmesh consume tickmesh.examples.anomaly:Flagger --pattern 'trade.*.AAPL'
    python -m tickmesh.examples.plain_subscriber ipc:///tmp/tickmesh-$(id -u)/subscribe 'trade.'

or list the first two in a config: run = "tickmesh.runtime.consumer" and, in its settings,
target = "tickmesh.examples.spread:monitor".
"""
