// Small behaviours of the site's own pages (no inline scripts: the CSP forbids them).
(function () {
  "use strict";
  // forms that destroy something ask first: <form data-confirm="Delete …?">
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
