"""Coinbase Exchange WebSocket feed (wss://ws-feed.exchange.coinbase.com).

    wire        the messages both ways and their validation (pure)
    protocol    the client side: a pure state machine, books kept to validate and resync
    handler     the supervised handler process: settings and the thin I/O
    sim/        the simulator: server (I/O), market (L2 books and trades), replay
"""
