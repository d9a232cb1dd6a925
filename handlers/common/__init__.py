"""What every provider's handler and simulator share. Read protocol.py first: its docstring is
the whole contract between a provider's sans-I/O protocol and the client that runs it.

    protocol    the contract: Output, Change, and the effects (Timer, HttpRequest, Resubscribe)
    client      ReconnectingClient: the WebSocket I/O around a protocol
    effects     how the client carries out timers, HTTP requests and resubscribes
    lifecycle   a connection's life as the bus sees it: Status events and the backoff
    backoff     capped exponential backoff with jitter
    simulator   what every simulator shares: settings, command line, test controls
    market      the market model every simulator draws its prices from (pure)

This package re-exports nothing: importing one pure module loads no I/O library.
"""
