"""The ib simulator and everything only it uses: `server` is the process
(`python -m handlers.ib.sim.server`, or `tickmesh sim ib`)."""
