// The one piece of the HTML Imports polyfill (webcomponents.js 0.7) that the vulcanized
// trace_viewer_full.html needs besides v0 custom elements: `document._currentScript`, which the
// viewer's modules read to find their <template>s. With no imports on the page the polyfill's
// answer is simply the running script, so this getter returns `document.currentScript`.
if (!('_currentScript' in document)) {
  Object.defineProperty(document, '_currentScript', {
    configurable: true,
    get: function () { return document.currentScript; },
  });
}
