"""The supervisor: loads the config, runs every process of the system as its child, restarts
them by policy, and answers `tickmesh status` on a control socket."""
