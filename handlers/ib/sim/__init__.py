"""The ib simulator and everything only it uses: `server` is the process
(`python -m tickmesh.handlers.ib.sim.server`, or `tickmesh sim ib`)."""
