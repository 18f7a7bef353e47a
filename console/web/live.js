// Live updates for the trendstream console. The page names a
// server-sent-events URL in <body data-live>; each "update" event carries
// server-rendered HTML (escaped by Go's html/template) whose top-level
// elements replace the page's elements of the same id. Only changed
// elements are replaced, and an open <details> stays open.
(function () {
  'use strict';
  var url = document.body.getAttribute('data-live');
  var status = document.getElementById('live-status');
  if (!url || !window.EventSource) { return; }
  var updates = 0;
  function say(text) { if (status && status.textContent !== text) { status.textContent = text; } }
  var source = new EventSource(url);
  source.addEventListener('open', function () { say('Live: this page updates as new data arrives.'); });
  source.addEventListener('update', function (e) {
    var doc = new DOMParser().parseFromString('<!doctype html><body>' + e.data, 'text/html');
    Array.prototype.forEach.call(doc.body.children, function (fresh) {
      var old = fresh.id && document.getElementById(fresh.id);
      if (!old || old.outerHTML === fresh.outerHTML) { return; }
      if (old.tagName === 'DETAILS' && old.open) { fresh.open = true; }
      old.replaceWith(document.importNode(fresh, true));
    });
    updates++;
    document.body.setAttribute('data-updates', String(updates));
  });
  source.addEventListener('gone', function (e) {
    say(e.data);
    source.close();
  });
  source.addEventListener('error', function () {
    if (source.readyState === EventSource.CLOSED) {
      say('Live updates stopped. Reload the page to resume.');
    } else {
      say('Reconnecting…');
    }
  });
})();
