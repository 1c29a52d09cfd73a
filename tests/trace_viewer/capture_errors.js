// Loaded first on the page: records every uncaught error and every console.error/console.warn
// from the moment the viewer starts loading, so that harness.js can report them.
(function () {
  'use strict';
  const captured = {pageErrors: [], console: []};
  window.paleosimCaptured = captured;
  for (const level of ['error', 'warn']) {
    const original = console[level].bind(console);
    console[level] = function (...parts) {
      captured.console.push(level + ': ' + parts.map(String).join(' '));
      original(...parts);
    };
  }
  window.addEventListener('error', function (event) {
    captured.pageErrors.push(String(event.message) + ' at ' + event.filename + ':' + event.lineno);
  });
})();
