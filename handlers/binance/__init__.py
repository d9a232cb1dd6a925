"""Binance spot: the handler, its pure protocol, and a simulator of the venue."""
