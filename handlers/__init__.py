"""Feed handlers: one folder per provider (protocol, simulator, handler)."""
