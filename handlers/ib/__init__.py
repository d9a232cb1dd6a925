"""Interactive Brokers: the TWS API socket protocol (wire.py), position-indexed depth
(depth.py), a fake TWS (market.py, tws.py, simulator.py) and the handler (handler.py)."""
