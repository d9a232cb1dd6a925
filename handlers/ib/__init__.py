"""Interactive Brokers: TWS / IB Gateway through ib_async.

    protocol    the client side, pure: ib_async's ticks and errors in, events, Status
                changes and resubscribes out
    depth       IB's position-indexed depth turned into price levels (pure; the simulator
                shares its operation codes)
    handler     the supervised handler process: settings, and ib_async as the I/O
    sim/        the fake TWS: server (I/O), session (the TWS side, sans-I/O), wire (the
                TWS API's framing and messages), market
"""
