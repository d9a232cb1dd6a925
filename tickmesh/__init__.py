"""The tickmesh command line."""
