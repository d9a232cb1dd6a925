"""The coinbase simulator and everything only it uses: `server` is the process
(`python -m handlers.coinbase.sim.server`, or `tickmesh sim coinbase`)."""
