"""paleosim: simulator."""
