"""Timelines in the Chrome Trace Event Format (JSON object form), for chrome://tracing and Perfetto.

One process per rank (device), one thread per stream (compute, communication, ...), a complete
event ("X") per operation with microsecond timestamps, flow arrows from each transfer to the
first operation on the receiving rank that needed it, and a "network" process with counter tracks
("C") for the utilisation of the busiest links: by default of the links where inter-server
contention lives (NICs' fabric ports and switch-to-switch links, ``links="network"``), ranked by
mean utilisation, so the bottleneck of a run shows rather than one server's NVSwitch (see
:data:`LINK_SCOPES`). Metadata events name every process and thread.
Format reference: "Trace Event Format", Google, 2016 (the Catapult project's documentation).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

US_PER_S = 1e6
FLOW_NUDGE_US = 1e-3  # flow events sit 1 ns inside their ops (see _inside)
STREAM_ORDER = ("compute", "comm", "pull", "ps", "host")
#: Which links get counter tracks: ``network`` (NIC ports and fabric links), ``nic`` (links
#: between a NIC and the fabric), ``fabric`` (switch to switch), ``intra`` (inside servers:
#: NVLink, NVSwitch, PCIe), ``all``.
LINK_SCOPES = ("network", "nic", "fabric", "intra", "all")


def _tid(stream: str, tids: dict[str, int]) -> int:
    if stream not in tids:
        base = STREAM_ORDER.index(stream) if stream in STREAM_ORDER else len(STREAM_ORDER)
        tids[stream] = base if base not in tids.values() else max(tids.values()) + 1
    return tids[stream]


def chrome_trace(result, *, max_link_counters: int = 16, links: str = "network"
                 ) -> dict[str, Any]:
    """The trace of a :class:`~simulator.simulate.SimResult` as a JSON-ready dict; counter
    tracks for the ``max_link_counters`` most utilised links of scope ``links``
    (:data:`LINK_SCOPES`; when that scope carried nothing, all links)."""
    if links not in LINK_SCOPES:
        from simulator.errors import UnknownNameError
        raise UnknownNameError("link scope", str(links), list(LINK_SCOPES), field="links")
    events: list[dict[str, Any]] = []
    tids: dict[str, int] = {}
    ops: pd.DataFrame = result.ops
    for rank, node in enumerate(result.rank_nodes):
        device = result.devices.loc[rank, "device"] if rank < len(result.devices) else ""
        events.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                       "args": {"name": f"rank {rank}: {node} ({device})"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0,
                       "args": {"sort_index": rank}})
    seen_threads: set[tuple[int, str]] = set()
    for row in ops.itertuples(index=False):
        tid = _tid(row.stream, tids)
        if (row.rank, row.stream) not in seen_threads:
            seen_threads.add((row.rank, row.stream))
            events.append({"ph": "M", "name": "thread_name", "pid": row.rank, "tid": tid,
                           "args": {"name": row.stream}})
        args = {"op": int(row.op), "iteration": int(row.iteration)}
        if row.kind == "compute":
            args.update(phase=row.phase, microbatch=int(row.microbatch), flops=float(row.flops),
                        energy_J=float(getattr(row, "energy_J", 0.0)))
        else:
            args.update(bytes=float(row.nbytes))
            if row.kind == "collective":
                args.update(collective=row.collective, algorithm=row.algorithm)
            if row.kind == "transfer":
                args.update(peer=int(row.peer))
        name = row.name if row.kind != "compute" else f"{row.name} {_short(row.phase)}"
        events.append({"ph": "X", "name": name, "cat": row.phase or row.kind, "pid": int(row.rank),
                       "tid": tid, "ts": row.start_s * US_PER_S,
                       "dur": (row.end_s - row.start_s) * US_PER_S, "args": args})
    events += _flow_arrows(result, tids)
    events += _link_counters(result, max_link_counters, pid=len(result.rank_nodes), scope=links)
    events += _memory_counters(result)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"generator": "paleosim", **{k: _plain(v)
                                                      for k, v in result.metrics.items()}}}


def _short(phase: str) -> str:
    return {"forward": "fwd", "backward_data": "bwd-data", "backward_filter": "bwd-filter",
            "update": "update"}.get(phase, phase)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _flow_arrows(result, tids: dict[str, int]) -> list[dict[str, Any]]:
    """An arrow ("s" then "f") from each transfer to the first op on its peer that depends on it.

    Both ends sit just after the start of their op (see :func:`_inside`).
    """
    tg = getattr(result, "taskgraph", None)
    if tg is None:
        return []
    ops = result.ops
    transfers = ops[ops["kind"] == "transfer"]
    if transfers.empty:
        return []
    by_op = {(int(r.op), int(r.rank)): r for r in ops.itertuples(index=False)}
    consumer: dict[int, int] = {}
    for op in tg.ops:
        for d in op.deps:
            if tg.ops[d].kind == "transfer" and op.rank == tg.ops[d].peer and d not in consumer:
                consumer[d] = op.id
    out = []
    for i, t in enumerate(transfers.itertuples(index=False)):
        c = consumer.get(int(t.op))
        target = by_op.get((c, int(t.peer))) if c is not None else None
        if target is None:
            continue
        out.append({"ph": "s", "id": i, "name": "transfer", "cat": "flow", "pid": int(t.rank),
                    "tid": tids[t.stream], "ts": _inside(t.start_s, t.end_s)})
        out.append({"ph": "f", "bp": "e", "id": i, "name": "transfer", "cat": "flow",
                    "pid": int(target.rank), "tid": tids[target.stream],
                    "ts": _inside(target.start_s, target.end_s)})
    return out


def _inside(start_s: float, end_s: float) -> float:
    """A flow event's time in µs: just after ``start_s``, strictly inside the op when it can be.

    Viewers bind an "s" event, and an "f" event with ``bp: "e"``, to the slice that encloses its
    timestamp. The Catapult viewer's lookup treats slices as closed intervals, so at the instant
    where one op ends and the next on the same stream starts it picks the earlier op and the
    arrow would leave (or land on) the wrong slice. Moving the event FLOW_NUDGE_US into its op
    (at most half the op's duration) leaves a single enclosing slice.
    """
    start_us = start_s * US_PER_S
    return start_us + min(FLOW_NUDGE_US, (end_s - start_s) * US_PER_S / 2)


def link_scope(graph, src, dst) -> str:
    """``nic``, ``fabric`` or ``intra`` for the directed link ``src -> dst`` of ``graph``."""
    inside = [graph.nodes[n].get("server") is not None for n in (src, dst)]
    if not any(inside):
        return "fabric"
    if all(inside) and graph.nodes[src].get("server") == graph.nodes[dst].get("server"):
        return "intra"
    return "nic"


def busiest_links(result, limit: int, scope: str = "network"):
    """The ``limit`` links of ``scope`` with the highest mean utilisation (ties: bytes, then
    link number) among those that carried bytes; all scopes when ``scope`` carried nothing."""
    links = result.links
    carried = links[links["bytes"] > 0]
    if scope != "all" and result.cluster is not None and len(carried):
        graph = result.cluster.graph
        kinds = [link_scope(graph, s, d) for s, d in zip(carried["src"], carried["dst"])]
        wanted = ("nic", "fabric") if scope == "network" else (scope,)
        inside = carried[[k in wanted for k in kinds]]
        carried = inside if len(inside) else carried
    ranked = carried.assign(_u=carried["utilisation"]).sort_values(
        ["_u", "bytes", "link"], ascending=[False, False, True], kind="stable")
    return ranked.drop(columns="_u").head(limit)


def _link_counters(result, limit: int, *, pid: int, scope: str = "network"
                   ) -> list[dict[str, Any]]:
    links = result.links
    util = result.utilisation
    if limit <= 0 or links is None or links.empty or util is None or util.empty:
        return []
    busiest = busiest_links(result, limit, scope)
    if busiest.empty:
        return []
    out = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": {"name": "network (link utilisation)"}},
           {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
            "args": {"sort_index": pid}}]
    by_link = dict(tuple(util.groupby("link", sort=False)))
    for link in busiest.itertuples(index=False):
        label = f"{link.src} -> {link.dst}"
        rows = by_link.get(link.link)
        if rows is None:
            continue
        for r in rows.itertuples(index=False):
            out.append({"ph": "C", "name": label, "pid": pid, "ts": r.start_s * US_PER_S,
                        "args": {"utilisation": float(r.utilisation)}})
            out.append({"ph": "C", "name": label, "pid": pid, "ts": r.end_s * US_PER_S,
                        "args": {"utilisation": 0.0}})
    return out


def _memory_counters(result) -> list[dict[str, Any]]:
    """Per rank, a "memory (bytes)" counter at t=0 with its peak-memory breakdown
    (``result.tables["memory"]``, see :mod:`simulator.memory`) as stacked series."""
    table = getattr(result, "tables", {}).get("memory")
    if table is None:
        return []
    parts = [c for c in table.columns if c.endswith("_bytes") and c not in ("capacity_bytes",
                                                                            "total_bytes")]
    return [{"ph": "C", "name": "memory (bytes)", "pid": int(row["rank"]), "ts": 0.0,
             "args": {c[:-len("_bytes")]: float(row[c]) for c in parts}}
            for row in table.to_dict("records")]
