/* Dosing board: entries are queued in localStorage with their idempotency keys and sent when the
   connection allows; nothing is shown as saved before the server answered. The board polls its
   JSON state every few seconds; a person whose record changed has their card updated in place
   (state, readiness, due clock, entries) from a fresh copy of the board, and their forms are
   replaced only when nobody is typing in them. A form remembers the version it was started on, so
   a write based on a stale state is refused (409): both versions are shown and the typed values
   stay in the form. Without JavaScript the forms post normally. */
(function () {
  "use strict";
  var board = document.querySelector(".dosing-board");
  if (!board || !window.fetch || !window.localStorage || !window.DOMParser) { return; }
  var stateUrl = board.getAttribute("data-state-url");
  var storeKey = "retreat.dosing.queue." + board.getAttribute("data-session-id");
  var status = document.getElementById("sync-status");
  var csrf = (document.querySelector("input[name=csrf_token]") || {}).value || "";
  var sending = false;
  var refreshing = false;
  var problem = "";
  var HIDDEN = {csrf_token: 1, idempotency_key: 1, expected_version: 1};

  function load() { try { return JSON.parse(localStorage.getItem(storeKey) || "[]"); } catch (e) { return []; } }
  function save(q) { localStorage.setItem(storeKey, JSON.stringify(q)); }
  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }
  function say(text) { status.hidden = !text; status.textContent = text || ""; }
  function label(kind) { return kind.replace(/_/g, " "); }
  function card(id) { return document.getElementById("person-" + id); }
  function kindOf(form) { return form.getAttribute("action").split("/").pop(); }
  function formOf(person, kind) { return person && person.querySelector("form[action$='/" + kind + "']"); }

  function showQueue() {
    var q = load();
    document.querySelectorAll(".entries li.pending").forEach(function (li) { li.remove(); });
    q.forEach(function (item) {
      var person = card(item.enrollment_id);
      if (!person) { return; }
      var li = document.createElement("li");
      li.className = "pending";
      li.textContent = "Waiting to send: " + label(item.kind) + " (not saved yet)";
      person.querySelector("[data-role=entries]").appendChild(li);
    });
    if (q.length) {
      say(q.length + (q.length === 1 ? " entry is" : " entries are") + " waiting to be sent" +
          (navigator.onLine ? "…" : " (offline: kept on this device until the connection returns).") +
          (problem ? " " + problem : ""));
    } else { say(""); }
  }

  function isBusy(person) {
    var active = document.activeElement;
    if (active && person.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) { return true; }
    return !!person.querySelector("form.entry-form[data-dirty]");
  }

  function restore(person, item) {
    /* Put what the clinician typed back into the form it came from, if that form is still there. */
    var form = formOf(person, item.kind);
    if (!form) { return; }
    Object.keys(item.body).forEach(function (k) {
      if (HIDDEN[k]) { return; }
      form.querySelectorAll("[name='" + k + "']").forEach(function (el) {
        if (el.type === "checkbox") { el.checked = el.value === item.body[k]; } else { el.value = item.body[k]; }
      });
    });
    form.setAttribute("data-dirty", "1");
    var details = form.closest("details");
    if (details) { details.open = true; }
  }

  function refusal(person, item, res) {
    var box = person.querySelector("[data-role=stale]");
    var section = document.createElement("section");
    section.className = "card card-alert";
    section.setAttribute("role", "alert");
    var h = document.createElement("h3");
    var msg = res.data.error || "Not saved.";
    var errs = res.data.errors || {};
    Object.keys(errs).forEach(function (k) {
      (errs[k] || []).forEach(function (m) { if (msg.indexOf(m) < 0) { msg += " " + m; } });
    });
    var p = document.createElement("p");
    p.textContent = msg;
    section.appendChild(h);
    section.appendChild(p);
    if (res.status === 409 && res.data.current_version) {
      h.textContent = "Not saved (" + label(item.kind) + "): someone else changed this person meanwhile";
      var versions = document.createElement("div");
      versions.className = "versions";
      var mine = document.createElement("div");
      mine.innerHTML = "<h4></h4><dl></dl>";
      mine.querySelector("h4").textContent = "What you sent (based on version " + res.data.your_version + ")";
      var dl = mine.querySelector("dl");
      Object.keys(item.body).forEach(function (k) {
        if (HIDDEN[k] || item.body[k] === "") { return; }
        var dt = document.createElement("dt"); dt.textContent = k.replace(/_/g, " ");
        var dd = document.createElement("dd"); dd.textContent = item.body[k];
        dl.appendChild(dt); dl.appendChild(dd);
      });
      var theirs = document.createElement("div");
      theirs.innerHTML = "<h4></h4><ol data-role=current></ol><p></p>";
      theirs.querySelector("h4").textContent = "Now on the record (version " + res.data.current_version + ")";
      theirs.querySelector("p").textContent = "Your values are still in the form: check them against the record and send again if they still apply.";
      versions.appendChild(mine);
      versions.appendChild(theirs);
      section.appendChild(versions);
      section.setAttribute("data-current-version", res.data.current_version);
    } else {
      h.textContent = "Not saved (" + label(item.kind) + ")";
    }
    box.innerHTML = "";
    box.appendChild(section);
    restore(person, item);
    fillCurrent(person);
  }

  function fillCurrent(person) {
    var ol = person.querySelector("[data-role=stale] [data-role=current]");
    if (!ol) { return; }
    ol.innerHTML = "";
    person.querySelectorAll("[data-role=entries] li:not(.pending)").forEach(function (li) {
      ol.appendChild(li.cloneNode(true));
    });
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
      .then(function (r) {
        return r.json().then(function (data) { return {status: r.status, data: data}; },
                             function () { throw {status: r.status}; });
      })
      .then(function (res) {
        problem = "";
        save(load().filter(function (x) { return x.body.idempotency_key !== item.body.idempotency_key; }));
        if (res.status !== 200 && res.status !== 201) {
          var person = card(item.enrollment_id);
          if (person) { refusal(person, item, res); }
        }
        refresh();
      })
      .catch(function (err) {
        /* nothing is dropped: the entry stays queued and is sent again (its key makes that safe) */
        problem = err && err.status ? "The server could not store the last one (error " + err.status +
          "); it stays on this device and is sent again." : "";
      })
      .then(function () { sending = false; showQueue(); if (load().length && navigator.onLine) { setTimeout(flush, 1500); } });
  }

  document.addEventListener("input", markDirty);
  document.addEventListener("change", markDirty);
  function markDirty(ev) {
    var form = ev.target.closest && ev.target.closest("form.entry-form");
    if (!form) { return; }
    form.setAttribute("data-dirty", "1");
    if (!form.hasAttribute("data-base-version")) {
      form.setAttribute("data-base-version", form.closest(".person").getAttribute("data-version"));
    }
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList.contains("entry-form")) { return; }
    ev.preventDefault();
    var body = {};
    new FormData(form).forEach(function (v, k) { if (k !== "csrf_token") { body[k] = v; } });
    var person = form.closest(".person");
    var id = person.getAttribute("data-enrollment-id");
    var q = load();
    var stale = person.querySelector("[data-role=stale] [data-current-version]");
    var base = parseInt(stale ? stale.getAttribute("data-current-version") :
                        (form.getAttribute("data-base-version") || person.getAttribute("data-version")), 10);
    /* entries still waiting for this person come first: each moves the record one version on */
    var ahead = q.filter(function (x) { return x.enrollment_id === id && parseInt(x.body.expected_version, 10) >= base; });
    body.expected_version = String(base + ahead.length);
    body.idempotency_key = body.idempotency_key || uuid();
    q.push({url: form.getAttribute("action"), kind: kindOf(form), enrollment_id: id, body: body});
    save(q);
    form.reset();
    form.querySelector("input[name=idempotency_key]").value = uuid();
    form.removeAttribute("data-dirty");
    form.removeAttribute("data-base-version");
    person.querySelector("[data-role=stale]").innerHTML = "";
    showQueue();
    flush();
  });

  function update(person, fresh) {
    /* Swap what the server shows about this person; keep forms someone is typing in. */
    ["[data-role=state]", "[data-role=readiness]", "[data-role=entries]"].forEach(function (sel) {
      var a = person.querySelector(sel), b = fresh.querySelector(sel);
      if (a && b) { a.innerHTML = b.innerHTML; }
    });
    person.className = fresh.className;
    person.setAttribute("data-version", fresh.getAttribute("data-version"));
    if (!isBusy(person)) {
      var forms = person.querySelector("[data-role=forms]"), next = fresh.querySelector("[data-role=forms]");
      if (forms && next) {
        var open = {};
        forms.querySelectorAll("details[open] > summary").forEach(function (s) { open[s.textContent] = 1; });
        var csrfNow = csrf;
        forms.innerHTML = next.innerHTML;
        forms.querySelectorAll("details > summary").forEach(function (s) { if (open[s.textContent]) { s.parentNode.open = true; } });
        forms.querySelectorAll("input[name=csrf_token]").forEach(function (el) { el.value = csrfNow; });
      }
    }
    fillCurrent(person);
  }

  function refresh() {
    if (refreshing) { return; }
    refreshing = true;
    fetch(stateUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        var changed = data.people.filter(function (p) {
          var el = card(p.enrollment_id);
          return el && (String(p.version) !== el.getAttribute("data-version") ||
                        !el.classList.contains("state-" + p.state));
        });
        if (!changed.length) { return null; }
        return fetch(window.location.pathname, {credentials: "same-origin", headers: {"Accept": "text/html"}})
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
          .then(function (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            changed.forEach(function (p) {
              var fresh = doc.getElementById("person-" + p.enrollment_id);
              if (fresh) { update(card(p.enrollment_id), fresh); }
            });
            showQueue();
          });
      })
      .catch(function () { /* offline: the queue says so */ })
      .then(function () { refreshing = false; });
  }

  window.addEventListener("online", flush);
  window.addEventListener("offline", showQueue);
  showQueue();
  flush();
  setInterval(function () { if (navigator.onLine) { flush(); refresh(); } }, 3000);
})();
