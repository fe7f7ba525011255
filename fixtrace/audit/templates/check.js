// Check mode (report.html?check), for headless browsers: records script errors, CSP violations,
// dialogs and images that fail, loads every lazy image, then (on load) writes the findings on <html>:
// data-check="done", data-errors and data-broken-images (JSON lists), data-images (a count).
(function () {
  "use strict";
  if (!/[?&]check(=|&|$)/.test(location.search)) return;
  var errors = [];
  var note = function (text) { errors.push(String(text)); };
  window.addEventListener("error", function (e) {
    var target = e.target;
    if (target && target !== window && target.tagName) {
      note("resource failed: " + (target.getAttribute("src") || target.getAttribute("href")));
    } else {
      note("script error: " + e.message);
    }
  }, true);
  window.addEventListener("securitypolicyviolation", function (e) {
    note("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
  });
  var originalError = console.error;
  console.error = function () {
    note("console.error: " + Array.prototype.join.call(arguments, " "));
    return originalError.apply(console, arguments);
  };
  window.alert = window.confirm = window.prompt = function (message) { note("dialog: " + message); };
  // Lazy images made eager before the load event delay it: when it fires, every image is done.
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.images, function (img) { img.loading = "eager"; });
  });
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
    var root = document.documentElement;
    root.setAttribute("data-errors", JSON.stringify(errors));
    root.setAttribute("data-broken-images", JSON.stringify(broken.map(function (img) { return img.getAttribute("src"); })));
    root.setAttribute("data-images", String(images.length));
    root.setAttribute("data-check", "done");
  });
})();
