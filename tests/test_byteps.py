"""BytePS (Jiang et al., OSDI 2020): summation servers' traffic against the paper's formula."""
from __future__ import annotations

import pytest

from simulator.errors import SpecError
from simulator.simulate import simulate
from simulator.specs import SystemSpec, WorkloadSpec, strategy_from_dict
from simulator.strategies.byteps import (BytePSSpec, assign, optimal_cpu_share, partitions,
                                         server_shares)
from simulator.strategies.common import CostCache

WORKLOAD = WorkloadSpec(net="resnet50", batch=16)
GRAD = sum(CostCache(WORKLOAD, "roofline").grad_bytes())


def node(gpus: int) -> str:
    return (f"{{{{'gpu': 'V100', 'gpus': {gpus}, 'pcie': 'pcie3_x16', 'nics': 1, "
            f"'nic': 'eth10', 'gpudirect_rdma': True}}}}")


def nic_out(result, server) -> float:
    links = result.links
    return float(links[links["src"].map(lambda n: n[:2] == ("nic", server))
                       & links["dst"].map(lambda n: n[0] == "switch")]["bytes"].sum())


def test_optimal_share_is_the_papers():
    # x = 2k(n-1)/(n^2+kn-2k): nothing to the CPUs at k = 0 (an all-reduce's traffic)
    assert optimal_cpu_share(4, 0) == 0.0
    assert optimal_cpu_share(4, 2) == pytest.approx(2 * 2 * 3 / (16 + 8 - 4))
    assert optimal_cpu_share(8, 8) == pytest.approx(2 * 8 * 7 / (64 + 64 - 16))
    assert sum(server_shares(4, 2, True, "optimal")) == pytest.approx(1.0)
    assert server_shares(4, 2, False, "optimal") == [0.5, 0.5]


@pytest.mark.parametrize("machines,cpus,gpus", [(4, 2, 1), (4, 4, 2), (3, 1, 2), (4, 0, 1)])
def test_summation_server_traffic_matches_the_papers_formula(machines, cpus, gpus):
    """Per iteration, each CPU server's NIC sends back n times the bytes it owns (and receives
    as much); each GPU machine's NIC sends its pushes to the CPU servers and to the other
    machines' services plus its own service's results to the n-1 others. With the optimal
    split the busiest NIC carries 2n(n-1)M/(n^2+kn-2k) each way (the paper's section 4.1), up
    to one partition per machine of rounding."""
    system = SystemSpec(topology=f"single_switch(servers={machines}, server={node(gpus)}, "
                                 f"cpu_hosts={cpus})")
    spec = BytePSSpec(workers=machines * gpus, servers=cpus, partition_bytes=256e3,
                      iterations=1)
    result = simulate(WORKLOAD, system, spec)
    tensors = CostCache(WORKLOAD, "roofline").grad_bytes()
    parts = partitions(tensors, spec.partition_bytes)
    owner = assign(parts, server_shares(machines, cpus, True, "optimal"))
    loads = [sum(p for p, j in zip(parts, owner) if j == s) for s in range(cpus + machines)]
    n = machines  # (rel 1e-9: the links sum hundreds of partitions in another order)
    for j in range(cpus):  # CPU servers follow the GPU servers in the topology's numbering
        assert nic_out(result, machines + j) == pytest.approx(n * loads[j], rel=1e-9)
    for i in range(machines):
        to_cpus = sum(loads[:cpus])
        to_others = sum(loads[cpus + s] for s in range(machines) if s != i)
        expected = to_cpus + to_others + (n - 1) * loads[cpus + i]
        assert nic_out(result, i) == pytest.approx(expected, rel=1e-9)
    busiest = max(nic_out(result, s) for s in range(machines + cpus))
    formula = 2 * n * (n - 1) * GRAD / (n * n + cpus * n - 2 * cpus)
    assert abs(busiest - formula) <= n * max(parts)


def test_byteps_is_a_strategy_kind_with_checked_fields():
    spec = strategy_from_dict({"kind": "byteps", "workers": 8, "servers": 2})
    assert isinstance(spec, BytePSSpec)
    with pytest.raises(SpecError, match="summation server"):
        BytePSSpec(workers=2, servers=0, colocated=False)
    with pytest.raises(SpecError, match="strategy.intra"):
        BytePSSpec(workers=2, intra="allreduce")
