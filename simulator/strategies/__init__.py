"""Parallel strategies: each compiles (workload, cluster, strategy) into a task graph."""
