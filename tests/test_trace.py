"""The Chrome trace export: the Trace Event Format's schema, and agreement with the ops table.

Format reference: "Trace Event Format", Google, 2016 (the Catapult project's documentation): the
JSON object form holds ``traceEvents``; complete events ("X") need name, ph, ts, dur, pid, tid with
times in microseconds; metadata events ("M") name processes and threads through ``args``; counter
events ("C") carry numeric series in ``args``; flow events ("s", "f") share an ``id`` (with name and
category) and ``bp: "e"`` binds a flow end to the slice that encloses it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simulator.errors import SpecError

from simulator.cli import main
from simulator.simulate import simulate
from simulator.specs import DataParallelSpec, ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.trace import chrome_trace

SYSTEM = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', cpu_hosts=2)",
                    gpus_per_server=1)
WORKLOAD = WorkloadSpec(net="alexnet_owt", batch=32)
STRATEGIES = {
    "parameter_server": ParameterServerSpec(workers=4, shards=2),   # transfers: flow arrows
    "data_parallel": DataParallelSpec(workers=4, algorithm="ring"),  # collectives only
}
METADATA = {"process_name": "name", "thread_name": "name", "process_sort_index": "sort_index"}
SHORT_PHASE = {"forward": "fwd", "backward_data": "bwd-data", "backward_filter": "bwd-filter",
               "update": "update"}


@pytest.fixture(scope="module", params=sorted(STRATEGIES))
def traced(request):
    result = simulate(WORKLOAD, SYSTEM, STRATEGIES[request.param])
    return result, chrome_trace(result)


def events(trace: dict, *phases: str) -> list[dict]:
    return [e for e in trace["traceEvents"] if e["ph"] in phases]


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def op_rows(result) -> dict[tuple[int, int], object]:
    """The ops table keyed by (rank, op id): a collective has one row per rank."""
    rows = {(int(r.rank), int(r.op)): r for r in result.ops.itertuples(index=False)}
    assert len(rows) == len(result.ops)
    return rows


# --- the object form ------------------------------------------------------------------------------

def test_object_form_round_trips_through_strict_json(traced):
    _, trace = traced
    assert set(trace) == {"traceEvents", "displayTimeUnit", "otherData"}
    assert isinstance(trace["traceEvents"], list) and trace["traceEvents"]
    assert trace["displayTimeUnit"] in ("ms", "ns")
    assert trace["otherData"]["generator"] == "paleosim"
    text = json.dumps(trace, allow_nan=False)  # NaN or infinity would not be JSON
    assert json.loads(text) == trace


def test_every_event_has_the_keys_its_phase_requires(traced):
    _, trace = traced
    assert {e["ph"] for e in trace["traceEvents"]} <= {"X", "M", "C", "s", "f"}
    for e in trace["traceEvents"]:
        assert isinstance(e["pid"], int) and e["pid"] >= 0, e
        if e["ph"] == "X":
            assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e), e
            assert isinstance(e["name"], str) and e["name"]
            assert isinstance(e["tid"], int)
            assert is_number(e["ts"]) and e["ts"] >= 0 and is_number(e["dur"]) and e["dur"] >= 0
            assert isinstance(e.get("args", {}), dict)
        elif e["ph"] == "M":
            assert e["name"] in METADATA, e
            value = e["args"][METADATA[e["name"]]]
            assert isinstance(value, int if e["name"] == "process_sort_index" else str), e
            if e["name"] == "thread_name":
                assert isinstance(e["tid"], int)
        elif e["ph"] == "C":
            assert isinstance(e["name"], str) and e["name"]
            assert is_number(e["ts"]) and e["ts"] >= 0
            assert e["args"] and all(is_number(v) for v in e["args"].values()), e
        else:
            assert {"id", "ts", "pid", "tid", "name", "cat"} <= set(e), e
            assert is_number(e["ts"]) and e["ts"] >= 0 and isinstance(e["tid"], int)
            assert (e["ph"] == "f") == (e.get("bp") == "e"), e


def test_the_trace_is_deterministic(traced):
    result, trace = traced
    again = simulate(result.workload, result.system, result.strategy)
    assert json.dumps(chrome_trace(again)) == json.dumps(trace)


# --- processes and threads ------------------------------------------------------------------------

def test_one_named_process_per_rank(traced):
    result, trace = traced
    names = {e["pid"]: e["args"]["name"] for e in events(trace, "M")
             if e["name"] == "process_name"}
    ranks = len(result.rank_nodes)
    network = {ranks} if any(e["pid"] == ranks for e in events(trace, "C")) else set()
    assert set(names) == set(range(ranks)) | network
    assert len([e for e in events(trace, "M") if e["name"] == "process_name"]) == len(names)
    for rank, node in enumerate(result.rank_nodes):
        assert names[rank].startswith(f"rank {rank}: {node} (")
    order = {e["pid"]: e["args"]["sort_index"] for e in events(trace, "M")
             if e["name"] == "process_sort_index"}
    assert order == {pid: pid for pid in names}
    # every event lives in a named process
    assert {e["pid"] for e in trace["traceEvents"]} == set(names)


def test_one_named_thread_per_stream(traced):
    result, trace = traced
    rows = op_rows(result)
    thread_names = {}
    for e in events(trace, "M"):
        if e["name"] == "thread_name":
            assert (e["pid"], e["tid"]) not in thread_names, "a thread named twice"
            thread_names[(e["pid"], e["tid"])] = e["args"]["name"]
    stream_of_thread = {}
    for e in events(trace, "X"):
        stream = rows[(e["pid"], e["args"]["op"])].stream
        assert stream_of_thread.setdefault((e["pid"], e["tid"]), stream) == stream
    # a thread per (rank, stream) that ran ops, named after its stream, and no other threads
    assert thread_names == stream_of_thread
    pairs = [(pid, stream) for (pid, _), stream in thread_names.items()]
    assert len(pairs) == len(set(pairs))   # one thread per stream
    assert set(pairs) == {(int(r.rank), r.stream) for r in result.ops.itertuples(index=False)}


# --- complete events --------------------------------------------------------------------------

def test_one_complete_event_per_row_at_the_tables_times(traced):
    result, trace = traced
    rows = op_rows(result)
    complete = events(trace, "X")
    assert len(complete) == len(result.ops)
    keys = [(e["pid"], e["args"]["op"]) for e in complete]
    assert set(keys) == set(rows)   # and so one event per row
    for e in complete:
        row = rows[(e["pid"], e["args"]["op"])]
        assert e["ts"] == row.start_s * 1e6            # microseconds, exactly
        assert e["dur"] == (row.end_s - row.start_s) * 1e6
        assert e["args"]["iteration"] == row.iteration
        if row.kind == "compute":
            assert e["name"] == f"{row.name} {SHORT_PHASE.get(row.phase, row.phase)}"
            assert e["args"]["flops"] == row.flops
        else:
            assert e["name"] == row.name
            assert e["args"]["bytes"] == row.nbytes
        if row.kind == "transfer":
            assert e["args"]["peer"] == row.peer


def test_ops_on_one_thread_never_overlap(traced):
    """Slices on a thread must nest; ops of one stream run one after another."""
    _, trace = traced
    by_thread: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in events(trace, "X"):
        by_thread.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_thread.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end * (1 - 1e-12)


# --- counters ------------------------------------------------------------------------------------

def test_link_counters_follow_the_busiest_links(traced):
    """Counters for the most utilised links where inter-server contention lives (NIC ports and
    fabric links), falling back to every link when no byte left a server."""
    from simulator.trace import link_scope
    result, trace = traced
    network = len(result.rank_nodes)
    counters = [e for e in events(trace, "C") if e["pid"] == network]
    carried = result.links[result.links["bytes"] > 0]
    assert len(carried) > 0     # these scenarios move bytes over the network
    graph = result.cluster.graph
    scoped = carried[[link_scope(graph, s, d) != "intra"
                      for s, d in zip(carried["src"], carried["dst"])]]
    carried = scoped if len(scoped) else carried
    label = carried["src"].astype(str) + " -> " + carried["dst"].astype(str)
    names = {e["name"] for e in counters}
    assert len(names) == min(16, len(carried))
    assert names <= set(label)
    chosen = carried.loc[label.isin(names), "utilisation"]
    others = carried.loc[~label.isin(names), "utilisation"]
    assert others.empty or chosen.min() >= others.max()
    util = result.utilisation
    for name in names:
        series = [e for e in counters if e["name"] == name]
        assert all(set(e["args"]) == {"utilisation"} for e in series)
        assert all(0.0 <= e["args"]["utilisation"] <= 1.0 for e in series)
        ts = [e["ts"] for e in series]
        assert ts == sorted(ts)
        link = int(carried.loc[label == name, "link"].iloc[0])
        rows = util[util["link"] == link]
        assert len(series) == 2 * len(rows)
        assert max(e["args"]["utilisation"] for e in series) == pytest.approx(
            float(rows["utilisation"].max()), rel=1e-12)


@pytest.mark.parametrize("limit", [0, 3])
def test_max_link_counters_caps_the_counters(limit):
    result = simulate(WORKLOAD, SYSTEM, STRATEGIES["data_parallel"])
    trace = chrome_trace(result, max_link_counters=limit)
    network = len(result.rank_nodes)
    assert len({e["name"] for e in events(trace, "C") if e["pid"] == network}) == limit
    assert any(e["pid"] == network for e in events(trace, "M")) == (limit > 0)


def test_counters_show_the_nics_not_one_servers_nvswitch():
    """On DGX A100 servers a ring's NVSwitch ports carry 7 times the bytes of its NICs (7 of a
    channel's 8 hops per server are NVLink) at a lower load: ranked by bytes, the counters
    would all be NVSwitch ports; the default shows NIC and fabric links, the most loaded
    first; ``links='intra'`` selects the inside."""
    from simulator.trace import busiest_links, link_scope
    from simulator.specs import SystemSpec as System
    result = simulate(WorkloadSpec(net="resnet50", batch=32, dtype="fp16"),
                      System(topology="fat_tree(k=8, server='dgx_a100', servers=2)"),
                      DataParallelSpec(workers=16))
    graph = result.cluster.graph
    net = busiest_links(result, 4)
    assert {link_scope(graph, s, d) for s, d in zip(net["src"], net["dst"])} <= {"nic", "fabric"}
    inside = busiest_links(result, 4, "intra")
    assert {link_scope(graph, s, d) for s, d in zip(inside["src"], inside["dst"])} == {"intra"}
    nvlink = result.links[result.links["kind"] == "nvlink"]
    assert nvlink["bytes"].max() == pytest.approx(7 * net["bytes"].max(), rel=1e-9)
    assert net["utilisation"].min() > nvlink["utilisation"].max()
    with pytest.raises(SpecError, match="link scope"):
        chrome_trace(result, links="spine")


def test_no_link_counters_without_network_traffic():
    result = simulate(WORKLOAD, SYSTEM, DataParallelSpec(workers=1))
    assert result.links.empty or float(result.links["bytes"].sum()) == 0.0
    trace = chrome_trace(result)
    assert not [e for e in trace["traceEvents"] if e["pid"] == len(result.rank_nodes)]
    assert not events(trace, "s", "f")
    assert len(events(trace, "X")) == len(result.ops)


# --- flow arrows ---------------------------------------------------------------------------------

def test_flow_arrows_go_from_transfers_to_ops_that_need_them(traced):
    result, trace = traced
    tg = result.taskgraph
    rows = op_rows(result)
    starts = {e["id"]: e for e in events(trace, "s")}
    ends = {e["id"]: e for e in events(trace, "f")}
    assert len(starts) == len(events(trace, "s")) and len(ends) == len(events(trace, "f"))
    assert set(starts) == set(ends)
    transfers = result.ops[result.ops["kind"] == "transfer"]
    needed = {d for op in tg.ops for d in op.deps
              if tg.ops[d].kind == "transfer" and op.rank == tg.ops[d].peer}
    assert len(starts) == len(needed)
    if isinstance(result.strategy, ParameterServerSpec):
        n = result.strategy.workers * result.strategy.shards
        # every push feeds an update; every pull but the last iteration's a forward pass
        assert len(transfers) == 2 * n * result.strategy.iterations
        assert len(needed) == len(transfers) - n > 0
    else:
        assert transfers.empty and not starts
    complete = events(trace, "X")
    sources = set()
    for flow_id, s in starts.items():
        f = ends[flow_id]
        assert (s["name"], s["cat"]) == (f["name"], f["cat"])
        assert s["ts"] <= f["ts"]
        # each end is enclosed by exactly one slice of its thread: the one it binds to
        sent, = enclosing(complete, s)
        used, = enclosing(complete, f)
        sender = rows[(sent["pid"], sent["args"]["op"])]
        assert sender.kind == "transfer" and sender.peer == f["pid"]
        assert sender.op in tg.ops[used["args"]["op"]].deps
        sources.add(sender.op)
    assert sources == needed


def enclosing(complete: list[dict], flow: dict) -> list[dict]:
    return [e for e in complete if (e["pid"], e["tid"]) == (flow["pid"], flow["tid"])
            and e["ts"] <= flow["ts"] <= e["ts"] + e["dur"]]


# --- the CLI ------------------------------------------------------------------------------------

CONFIG = """\
workload:
  net: alexnet_owt
  batch: 32
system:
  topology: "single_switch(servers={servers}, server='titan_node', cpu_hosts=2)"
  gpus_per_server: 1
strategy:
  kind: parameter_server
  workers: 2
  shards: 2
  iterations: 2
"""


@pytest.fixture()
def config(tmp_path) -> Path:
    path = tmp_path / "ps.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_cli_writes_the_trace_of_the_largest_worker_count(config, tmp_path, capsys):
    out = tmp_path / "traces" / "run.json"
    assert main(["simulate", str(config), "--workers", "1,2", "--trace", str(out),
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 3   # header and one row per worker count
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json"]
    trace = json.loads(out.read_text(encoding="utf-8"))
    assert trace["otherData"]["workers"] == 2
    expected = simulate(WORKLOAD, SYSTEM, ParameterServerSpec(workers=2, shards=2,
                                                              iterations=2))
    assert len(events(trace, "X")) == len(expected.ops)
    assert trace == json.loads(json.dumps(chrome_trace(expected)))


def test_cli_writes_one_trace_per_worker_count(config, tmp_path, capsys):
    pattern = tmp_path / "trace_{workers}.json"
    assert main(["simulate", str(config), "--workers", "1,2", "--trace", str(pattern),
                 "--format", "csv"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == [
        "trace_1.json", "trace_2.json"]
    assert leftovers(tmp_path) == []
    for n in (1, 2):
        trace = json.loads((tmp_path / f"trace_{n}.json").read_text(encoding="utf-8"))
        assert trace["otherData"]["workers"] == n
        ranks = {e["pid"] for e in events(trace, "X")}
        assert ranks == set(range(n + 2))     # n workers and two parameter-server shards


def test_cli_replaces_the_trace_atomically(config, tmp_path, monkeypatch, capsys):
    out = tmp_path / "trace.json"
    out.write_text("previous", encoding="utf-8")
    import simulator.commands._output as output

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(output.os, "replace", refuse)   # the rename that publishes the file
    # an OS error on writing is one line and exit 2 ...
    assert main(["simulate", str(config), "--trace", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out}: cannot write: disk full" in err
    # ... and a failed write leaves the old file whole and no temporary file behind
    assert out.read_text(encoding="utf-8") == "previous"
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert main(["simulate", str(config), "--trace", str(out), "--format", "csv"]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text(encoding="utf-8"))["otherData"]["workers"] == 2
    assert leftovers(tmp_path) == []
