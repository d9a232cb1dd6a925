"""The polygon simulator and everything only it uses: `server` is the process
(`python -m tickmesh.handlers.polygon.sim.server`, or `tickmesh sim polygon`)."""
