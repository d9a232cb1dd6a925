"""Provider-agnostic pieces shared by handlers: the reconnecting WebSocket client
(`client.ReconnectingClient`), the interface a provider's sans-I/O protocol implements for it
(`protocol.ClientProtocol`, `Output`, `Change`), the connection life as the bus sees it,
whatever owns the socket (`lifecycle.Lifecycle`: Status events, backoff, counters), the
reconnect backoff (`backoff.Backoff`), the settings reader (`settings.read`: a settings table
into a checked dataclass), the child runner that reads a child's settings before it starts
(`child.run`), and what every simulator shares: its common settings and its command line
(`simulator`).
Read handlers/common/protocol.py first: its docstring is the whole contract.
"""

from handlers.common.backoff import Backoff
from handlers.common.client import ClientSettings, ReconnectingClient
from handlers.common.protocol import Change, ClientProtocol, Output

__all__ = ["Backoff", "Change", "ClientProtocol", "ClientSettings", "Output", "ReconnectingClient"]
