"""The Binance spot simulator: streams, REST depth and the test control on one port."""
