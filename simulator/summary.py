"""Tables about nets: a per-layer summary on a device, and the list of shipped nets.

Tidy pandas tables with unit-suffixed columns; the CLI only renders them.
"""
from __future__ import annotations

import pandas as pd

from simulator.costmodel import DTYPE_BYTES, CostModel, RooflineCostModel, check_dtype
from workloads.graph import LayerGraph
from workloads.ops import PHASES
from workloads.registry import load_net, shipped_nets

SUMMARY_COLUMNS = ("layer", "type", "output_shape", "params", "forward_flops", "forward_bytes",
                   "forward_s", "backward_data_s", "backward_filter_s")


def layer_table(graph: LayerGraph, device, *, dtype: str = "fp32",
                cost_model: CostModel | None = None) -> pd.DataFrame:
    """One row per layer: shape, params, forward FLOPs and bytes, and seconds per phase."""
    check_dtype(dtype)
    model = cost_model or RooflineCostModel()
    rows = []
    for layer in graph.layers:
        fwd = layer.work["forward"]
        times = {f"{p}_s": model.phase_time_s(layer, p, device, dtype=dtype) for p in PHASES}
        rows.append({"layer": layer.name, "type": layer.type,
                     "output_shape": "x".join(str(d) for d in layer.output_shape),
                     "params": layer.params, "forward_flops": fwd.flops,
                     "forward_bytes": fwd.elems * DTYPE_BYTES[dtype], **times})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def table_totals(table: pd.DataFrame) -> dict:
    """Column sums of a :func:`layer_table` (numeric columns only)."""
    numeric = ("params", "forward_flops", "forward_bytes", "forward_s", "backward_data_s",
               "backward_filter_s")
    out = {c: table[c].sum().item() for c in numeric}
    out["layers"] = len(table)
    return out


def nets_table(names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Shipped nets with their input shape, layer count, parameters and forward FLOPs per sample."""
    rows = []
    for name in names or shipped_nets():
        graph = load_net(name, batch=1)
        inputs = [layer for layer in graph.layers if layer.op_class == "data"]
        rows.append({"net": name, "title": graph.name, "layers": len(graph),
                     "input_shape": "x".join(str(d) for d in inputs[0].output_shape[1:]),
                     "params": graph.total_params,
                     "forward_flops_per_sample": graph.phase_work("forward").flops,
                     "forward_macs_per_sample": graph.forward_macs})
    return pd.DataFrame(rows)
