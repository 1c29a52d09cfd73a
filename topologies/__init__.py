"""paleosim: topologies."""
