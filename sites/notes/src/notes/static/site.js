// Small behaviours of the site's own pages (no inline scripts: the CSP forbids them).
(function () {
  "use strict";
  // forms that destroy something ask first: <form data-confirm="Delete …?">
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  // a note was saved: the editor's local draft of it is no longer needed (see editor.js)
  document.querySelectorAll("[data-draft-saved]").forEach(function (el) {
    var path = ":" + el.getAttribute("data-draft-saved");
    try {
      for (var i = window.localStorage.length - 1; i >= 0; i--) {
        var key = window.localStorage.key(i);
        if (key && key.indexOf("notes-draft:") === 0 && key.slice(-path.length) === path) {
          window.localStorage.removeItem(key);
        }
      }
    } catch (e) { /* no storage: nothing kept */ }
  });
  // "Take theirs" drops the local draft too (the editor page does it on load)
})();
