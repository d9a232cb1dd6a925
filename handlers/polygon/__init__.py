"""Polygon.io (now Massive) stocks WebSocket: the pure protocol, a faithful simulator, and the
handler that normalizes trades, quotes and aggregates onto the bus."""
