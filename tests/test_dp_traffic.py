"""What data-parallel and parameter-server training put on the network, with exact expectations."""
from __future__ import annotations

import networkx as nx
import pytest

import topologies
from simulator.simulate import simulate
from simulator.specs import DataParallelSpec, ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.strategies.common import CostCache
from simulator.strategies.parallel3d_spec import Parallel3DSpec

NODE = "{{'gpu': 'V100', 'gpus': 1, 'pcie': 'pcie3_x16', 'nics': 1, 'nic': 'eth10'}}"


def span(ops, phase, iteration):
    rows = ops[(ops["phase"] == phase) & (ops["iteration"] == iteration)]
    return float(rows["end_s"].max() - rows["start_s"].min())


def test_parameter_server_pushes_and_pulls_run_concurrently():
    """4 workers, 4 dedicated shards, 10 GbE: each worker sends its gradient G (G/4 to each
    shard) while each shard receives 4 x G/4, all flows at B/4 at once: the push span is G/B
    plus one path latency, and so is the pull span (it was 0.348 s for 0.199 s of bound when a
    worker pushed to one shard after another)."""
    workload = WorkloadSpec(net="resnet50", batch=16)
    system = SystemSpec(topology=f"single_switch(servers=4, server={NODE}, cpu_hosts=4)")
    result = simulate(workload, system, ParameterServerSpec(workers=4, shards=4, iterations=2))
    grad = sum(CostCache(workload, "roofline").grad_bytes())
    graph = result.cluster.graph
    link = topologies.get("single_switch(servers=1, server=" + NODE.replace("{{", "{").replace(
        "}}", "}") + ")").edges[("nic", 0, 0), ("switch", "tor", 0)]["bandwidth_Bps"]
    path = nx.shortest_path(graph, ("gpu", 0, 0), ("cpu", 4))
    latency = sum(graph.edges[a, b]["latency_s"] for a, b in zip(path, path[1:]))
    bound = grad / link + latency
    assert span(result.ops, "push", 1) == pytest.approx(bound, rel=1e-9)
    assert span(result.ops, "pull", 1) == pytest.approx(bound, rel=1e-9)


WORKLOAD = WorkloadSpec(net="megatron-gpt-1.16b", batch=8, dtype="fp16", optimizer="adam")
SERVER = SystemSpec(topology="server(server='dgx_a100')")


def collective_bytes(result) -> dict[str, float]:
    ops = result.ops[(result.ops["kind"] == "collective") & (result.ops["iteration"] == 1)]
    first = ops.drop_duplicates("op")
    return first.groupby("collective")["nbytes"].sum().to_dict()


@pytest.mark.parametrize("microbatches", [1, 2])
def test_zero_stages_move_the_same_bytes_in_both_strategies(microbatches):
    """One data-parallel path: the ZeRO paper's volumes per step (Rajbhandari et al., SC20,
    section 7) in ``data_parallel`` and in ``parallel3d`` with tp = pp = 1. Per parameter byte
    P: stage 0 all-reduces P; stages 1 and 2 reduce-scatter P and all-gather P (stage 2 every
    microbatch, as DeepSpeed reduces each micro-step); stage 3 gathers the parameters before
    each forward and backward and reduce-scatters the gradients, every microbatch."""
    params = sum(CostCache(WORKLOAD, "roofline").grad_bytes())
    m = microbatches
    expected = {0: {"allreduce": params}, 1: {"reducescatter": params, "allgather": params},
                2: {"reducescatter": m * params, "allgather": params},
                3: {"reducescatter": m * params, "allgather": 2 * m * params}}
    for stage, volumes in expected.items():
        dp = simulate(WORKLOAD, SERVER, DataParallelSpec(
            workers=4, scaling="strong", zero_stage=stage, accumulation=m, overlap=False,
            grad_dtype="fp16"), on_overflow="flag")
        p3d = simulate(WORKLOAD, SERVER, Parallel3DSpec(dp=4, zero_stage=stage, microbatches=m),
                       on_overflow="flag")
        assert collective_bytes(dp) == pytest.approx(volumes, rel=1e-12), stage
        assert collective_bytes(p3d) == pytest.approx(volumes, rel=1e-12), stage
        assert dp.metrics["bytes_per_iteration"] == pytest.approx(
            p3d.metrics["bytes_per_iteration"], rel=1e-12)


def test_gradients_travel_in_grad_dtype():
    """PyTorch AMP keeps fp32 gradients, so mixed-precision DDP all-reduces 4 bytes a parameter;
    Megatron-LM reduces fp16 training's gradients in fp16 and bf16 training's in fp32."""
    params = sum(CostCache(WORKLOAD, "roofline").grad_bytes()) / 2  # fp16: 2 bytes each
    dp = simulate(WORKLOAD, SERVER, DataParallelSpec(workers=4, scaling="strong"))
    assert collective_bytes(dp) == pytest.approx({"allreduce": 4 * params}, rel=1e-12)
    half = simulate(WORKLOAD, SERVER, DataParallelSpec(workers=4, scaling="strong",
                                                       grad_dtype="fp16"))
    assert collective_bytes(half) == pytest.approx({"allreduce": 2 * params}, rel=1e-12)
    p3d = simulate(WORKLOAD, SERVER, Parallel3DSpec(dp=4))
    assert collective_bytes(p3d) == pytest.approx({"allreduce": 2 * params}, rel=1e-12)
    bf16 = WorkloadSpec(net="megatron-gpt-1.16b", batch=8, dtype="bf16", optimizer="adam")
    p3d = simulate(bf16, SERVER, Parallel3DSpec(dp=4))
    assert collective_bytes(p3d) == pytest.approx({"allreduce": 4 * params}, rel=1e-12)
    assert p3d.taskgraph.meta["grad_dtype"] == "fp32"
