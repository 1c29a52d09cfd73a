"""paleosim: workloads."""
