"""Feed handlers: one folder per provider (protocol.py, handler.py, sim/), and common/ for
what they share. handlers/common/protocol.py is the contract every provider implements."""
