"""Alpaca market-data stream v2 (stocks).

    wire        the messages both ways, their JSON and msgpack encodings, timestamps (pure)
    protocol    the client side: a pure state machine, frames in, events and replies out
    handler     the supervised handler process: settings and the thin I/O
    sim/        the simulator: server (I/O), session (the server's state machine), market,
                replay of recorded frames
"""
