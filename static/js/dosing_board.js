/* Dosing board: entries are queued in localStorage with their idempotency keys and sent when the
   connection allows; nothing is shown as saved before the server answered. The board polls its
   JSON state every few seconds to show the other clinicians' entries. Without JavaScript the
   forms post normally. */
(function () {
  "use strict";
  var board = document.querySelector(".dosing-board");
  if (!board || !window.fetch || !window.localStorage) { return; }
  var stateUrl = board.getAttribute("data-state-url");
  var storeKey = "retreat.dosing.queue." + board.getAttribute("data-session-id");
  var status = document.getElementById("sync-status");
  var csrf = (document.querySelector("input[name=csrf_token]") || {}).value || "";
  var sending = false;

  function load() { try { return JSON.parse(localStorage.getItem(storeKey) || "[]"); } catch (e) { return []; } }
  function save(q) { localStorage.setItem(storeKey, JSON.stringify(q)); }
  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }
  function say(text) { status.hidden = !text; status.textContent = text || ""; }

  function showQueue() {
    var q = load();
    document.querySelectorAll(".entries li.pending").forEach(function (li) { li.remove(); });
    q.forEach(function (item) {
      var person = document.getElementById("person-" + item.enrollment_id);
      if (!person) { return; }
      var li = document.createElement("li");
      li.className = "pending";
      li.textContent = "Waiting to send: " + item.kind.replace(/_/g, " ") + (item.error ? " — " + item.error : "");
      person.querySelector("[data-role=entries]").appendChild(li);
    });
    if (q.length) {
      say(q.length + (q.length === 1 ? " entry is" : " entries are") + " waiting to be sent" +
          (navigator.onLine ? "…" : " (offline: kept on this device until the connection returns)."));
    } else { say(""); }
  }

  function flush() {
    if (sending) { return; }
    var q = load();
    if (!q.length) { showQueue(); return; }
    sending = true;
    var item = q[0];
    fetch(item.url, {method: "POST", credentials: "same-origin",
                     headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf},
                     body: JSON.stringify(item.body)})
      .then(function (r) { return r.json().then(function (data) { return {status: r.status, data: data}; }); })
      .then(function (res) {
        var rest = load().filter(function (x) { return x.body.idempotency_key !== item.body.idempotency_key; });
        if (res.status === 200 || res.status === 201) {
          save(rest);
          refresh();
        } else {
          var msg = res.data.error || "Not saved.";
          var errs = res.data.errors || {};
          Object.keys(errs).forEach(function (k) {
            errs[k].forEach(function (m) { if (msg.indexOf(m) < 0) { msg += " " + m; } });
          });
          save(rest);
          var person = document.getElementById("person-" + item.enrollment_id);
          if (person) {
            var p = document.createElement("p");
            p.className = "flash flash-error"; p.setAttribute("role", "alert");
            p.textContent = "Not saved (" + item.kind.replace(/_/g, " ") + "): " + msg;
            person.insertBefore(p, person.querySelector("[data-role=entries]"));
          }
          refresh();
        }
      })
      .catch(function () { say("Offline: entries are kept on this device and sent when the connection returns."); })
      .then(function () { sending = false; showQueue(); if (load().length && navigator.onLine) { setTimeout(flush, 1500); } });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList.contains("entry-form")) { return; }
    ev.preventDefault();
    var body = {};
    new FormData(form).forEach(function (v, k) { if (k !== "csrf_token") { body[k] = v; } });
    var person = form.closest(".person");
    body.expected_version = person.getAttribute("data-version");
    body.idempotency_key = body.idempotency_key || uuid();
    var kind = form.getAttribute("action").split("/").pop();
    var q = load();
    q.push({url: form.getAttribute("action"), kind: kind, enrollment_id: person.getAttribute("data-enrollment-id"), body: body});
    save(q);
    form.querySelector("input[name=idempotency_key]").value = uuid();
    form.reset();
    showQueue();
    flush();
  });

  function refresh() {
    fetch(stateUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        var changed = false;
        data.people.forEach(function (p) {
          var el = document.getElementById("person-" + p.enrollment_id);
          if (!el) { return; }
          if (String(p.version) !== el.getAttribute("data-version") ||
              el.className.indexOf("state-" + p.state) < 0) { changed = true; }
        });
        var active = document.activeElement;
        var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.closest(".entry-form");
        if (changed && !load().length && !typing) { window.location.reload(); }
      })
      .catch(function () { /* offline: the queue says so */ });
  }

  window.addEventListener("online", flush);
  window.addEventListener("offline", showQueue);
  showQueue();
  flush();
  setInterval(function () { if (navigator.onLine) { flush(); refresh(); } }, 5000);
})();
