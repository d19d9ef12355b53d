// The framed booking widget (/widget/consult): free times from the public consult API in the
// visitor's zone (detected, or chosen), a short form, the confirmation. It tells the host page its
// height (postMessage to the listed host origin only; /widget.js checks event.origin).
(function () {
  "use strict";
  var root = document.querySelector("[data-widget]");
  if (!root) { return; }
  var $ = function (sel) { return root.querySelector(sel); };
  var tzSelect = $("[data-widget-tz]"), formZone = $("#widget-timezone"), status = $("[data-status]");
  var list = $("[data-days-list]"), earlier = $("[data-earlier]"), later = $("[data-later]");
  var form = $("[data-book-form]"), formError = $("[data-form-error]");
  var days = parseInt(root.getAttribute("data-days"), 10) || 7;
  var maxDays = parseInt(root.getAttribute("data-max-days"), 10) || 62;
  var host = root.getAttribute("data-host-origin");
  var offset = 0, chosen = null, busy = false;

  function postHeight() {
    if (!host || window.parent === window) { return; }
    // The content's own height (not the document's, which is at least the frame's current height).
    window.parent.postMessage({ type: "retreat-widget:height", height: Math.ceil(root.getBoundingClientRect().height) }, host);
  }
  if (window.ResizeObserver) { new ResizeObserver(postHeight).observe(root); }
  window.addEventListener("load", postHeight);

  var detected = "";
  try { detected = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { detected = ""; }
  if (detected && tzSelect.querySelector('option[value="' + detected.replace(/"/g, "") + '"]')) {
    tzSelect.value = detected; formZone.value = detected; $("#widget-tz-note").hidden = false;
  }

  function ymd(d) { return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0"); }
  function todayIn(zone) {  // the visitor's calendar day in the chosen zone
    var parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
    var p = parts.split("-");
    return new Date(parseInt(p[0], 10), parseInt(p[1], 10) - 1, parseInt(p[2], 10));
  }
  function localParts(iso) {  // "2026-03-10T09:00:00-06:00": the wall time as sent (already in the zone)
    return { day: iso.slice(0, 10), time: iso.slice(11, 16) };
  }
  function dayLabel(day) {
    var d = new Date(day + "T12:00:00Z");
    return d.toLocaleDateString(undefined, { weekday: "long", month: "long", day: "numeric", timeZone: "UTC" });
  }
  function show(step) {
    ["times", "form", "done"].forEach(function (s) { $('[data-step="' + s + '"]').hidden = s !== step; });
    postHeight();
  }

  function load() {
    var zone = tzSelect.value, first = todayIn(zone);
    first.setDate(first.getDate() + offset);
    var last = new Date(first); last.setDate(last.getDate() + days - 1);
    status.textContent = "Loading free times…";
    list.innerHTML = "";
    var url = root.getAttribute("data-slots-url") + "?start=" + ymd(first) + "&end=" + ymd(last) + "&tz=" + encodeURIComponent(zone);
    fetch(url, { headers: { Accept: "application/json" }, credentials: "omit" }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (!res.ok) { status.textContent = res.body.error || "Free times could not be loaded."; postHeight(); return; }
      render(res.body.slots || [], zone);
      earlier.hidden = offset === 0;
      later.hidden = offset + days * 2 > maxDays;
    }).catch(function () { status.textContent = "Free times could not be loaded. Please try again."; postHeight(); });
  }

  function render(slots, zone) {
    var byDay = {}, order = [];
    slots.forEach(function (s) {
      var p = localParts(s.start);
      if (!byDay[p.day]) { byDay[p.day] = []; order.push(p.day); }
      if (!byDay[p.day].some(function (x) { return x.start === s.start; })) { byDay[p.day].push(s); }
    });
    status.textContent = order.length ? "Choose a time (" + zone.replace(/_/g, " ") + ")." : "No free times these days; try later days.";
    order.forEach(function (day) {
      var box = document.createElement("div"); box.className = "widget-day";
      var h = document.createElement("h3"); h.textContent = dayLabel(day); box.appendChild(h);
      var ul = document.createElement("ul");
      byDay[day].forEach(function (s) {
        var li = document.createElement("li"), b = document.createElement("button");
        b.type = "button"; b.className = "button button-secondary button-small widget-slot";
        b.textContent = localParts(s.start).time;
        b.setAttribute("aria-label", dayLabel(day) + " at " + localParts(s.start).time);
        b.addEventListener("click", function () { choose(s, day); });
        li.appendChild(b); ul.appendChild(li);
      });
      box.appendChild(ul); list.appendChild(box);
    });
    postHeight();
  }

  function choose(slot, day) {
    chosen = slot;
    $("[data-chosen]").textContent = dayLabel(day) + ", " + localParts(slot.start).time + " (" + tzSelect.value.replace(/_/g, " ") + ")";
    formZone.value = tzSelect.value;
    clearErrors();
    show("form");
    $("#widget-name").focus();
  }

  function clearErrors() {
    root.querySelectorAll("[data-error-for]").forEach(function (p) { p.hidden = true; p.textContent = ""; });
    root.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    formError.hidden = true; formError.textContent = "";
  }

  function fieldErrors(errors) {
    var shown = false;
    Object.keys(errors || {}).forEach(function (name) {
      var p = root.querySelector('[data-error-for="' + name + '"]');
      var messages = [].concat(errors[name]).join(" ");
      if (p) { p.textContent = messages; p.hidden = false; form.elements[name].setAttribute("aria-invalid", "true"); shown = true; }
      else { formError.textContent = (formError.textContent + " " + messages).trim(); formError.hidden = false; }
    });
    return shown;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy || !chosen) { return; }
    clearErrors();
    busy = true;
    var body = { start: chosen.start, facilitator_id: chosen.facilitator_id, name: form.elements.name.value.trim(),
                 email: form.elements.email.value.trim(), timezone: formZone.value };
    fetch(root.getAttribute("data-book-url"), {
      method: "POST", credentials: "omit", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json" }
    }).then(function (r) {
      return r.json().then(function (b) { return { status: r.status, body: b }; });
    }).then(function (res) {
      busy = false;
      if (res.status === 201) {
        var p = localParts(res.body.start);
        $("[data-done-when]").textContent = dayLabel(p.day) + " at " + p.time + " (" + formZone.value.replace(/_/g, " ") + ").";
        show("done");
        $('[data-step="done"]').focus();
        return;
      }
      if (!fieldErrors(res.body.errors) || res.body.error) {
        formError.textContent = res.body.error || "That did not work; please try again.";
        formError.hidden = false;
      }
      if (res.status === 409) { formError.textContent = res.body.error + " Please choose another time."; load(); }
      postHeight();
    }).catch(function () {
      busy = false; formError.textContent = "The booking could not be sent. Please try again."; formError.hidden = false; postHeight();
    });
  });

  form.addEventListener("input", function (event) {  // a corrected field loses its old message
    var p = root.querySelector('[data-error-for="' + event.target.name + '"]');
    if (p) { p.hidden = true; event.target.removeAttribute("aria-invalid"); }
  });
  $("[data-back]").addEventListener("click", function () { show("times"); });
  tzSelect.addEventListener("change", function () { offset = 0; load(); });
  earlier.addEventListener("click", function () { offset = Math.max(0, offset - days); load(); });
  later.addEventListener("click", function () { offset += days; load(); });
  load();
})();
