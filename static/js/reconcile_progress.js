// Reconciliation run page: poll the run's progress (JSON) and reload once it has finished.
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-progress-url");
  var bar = box.querySelector("progress");
  var text = box.querySelector("[data-testid=run-progress]");
  var status = box.querySelector("[data-testid=run-status]");
  function tick() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { return setTimeout(tick, 5000); }
        if (status) { status.textContent = p.status; }
        if (p.status === "done" || p.status === "failed") { window.location.reload(); return; }
        if (bar) { bar.max = Math.max(1, p.total); bar.value = p.done; }
        if (text) { text.textContent = p.done + " of about " + (p.total || "?") + " Stripe objects" + (p.phase ? " (" + p.phase + ")" : ""); }
        setTimeout(tick, 1500);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1000);
})();
