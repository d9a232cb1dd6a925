"""The child runtime: what every tickmesh process shares, handler, simulator or consumer.

    process     run(work, Settings): the run loop, with heartbeat, readiness and a clean stop
    spec        the spec the supervisor hands a child (TICKMESH_CHILD), exit code 2
    settings    settings tables read into checked dataclasses; errors name the key
    check       a child checked by module name before anything starts (`tickmesh check`)
    logs        structlog: JSON lines in production, pretty on a terminal, secrets masked
    secrets     API keys from the environment, kept out of every log line and status
    lifeline    a child dies with its supervisor
    keeper      what a child leaves behind dies with it (run between supervisor and child)
    readiness   a child says "ready" to the supervisor
    metrics     named metrics with a schema, carried in heartbeats
    badinput    bad input counted always, logged sparingly

It uses the bus (a heartbeat is an event); the bus knows nothing of it.
"""
