"""Alpaca market-data stream v2: wire (messages and encodings), protocol (client state machine),
session (the server's, for the simulator), market and replay (the simulator's data),
simulator and handler (the processes)."""
