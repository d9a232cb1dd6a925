"""Consumer processes: each subscribes to the bus by topic pattern."""
