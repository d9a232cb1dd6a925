"""The alpaca simulator and everything only it uses: `server` is the process
(`python -m tickmesh.handlers.alpaca.sim.server`, or `tickmesh sim alpaca`)."""
