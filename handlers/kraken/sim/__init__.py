"""The kraken simulator and everything only it uses: `server` is the process
(`python -m tickmesh.handlers.kraken.sim.server`, or `tickmesh sim kraken`)."""
