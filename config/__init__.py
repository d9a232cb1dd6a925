"""The configs tickmesh ships: `default.toml` (the demo: every provider on its simulator), the
live examples and the Grafana dashboard, installed as package data (`tickmesh.config`)."""
