"""Kraken's public WebSocket API v1 (wss://ws.kraken.com): books verified by the venue's checksum.

    wire        the messages both ways, the pair names and their validation (pure)
    checksum    Kraken's CRC32 of a book's top 10 levels, and the book of strings it needs (pure)
    protocol    the client side: a pure state machine; every book update checked against `c`
    handler     the supervised handler process: settings and the thin I/O
    sim/        the simulator: server (I/O), market (books, trades, spreads), replay
"""
