"""Polygon.io stocks WebSocket.

    wire        the messages both ways and their validation (pure)
    protocol    the client side: a pure state machine and the normalizers
    handler     the supervised handler process: settings and the thin I/O
    sim/        the simulator: server (I/O), market (the random-walk feed)
"""
