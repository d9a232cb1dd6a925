"""The coinbase simulator and everything only it uses: `server` is the process
(`python -m tickmesh.handlers.coinbase.sim.server`, or `tickmesh sim coinbase`)."""
