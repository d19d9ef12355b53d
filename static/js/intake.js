/* Medical intake: save the draft as the participant goes, and show crisis resources the moment an
   answer signals risk (PHQ-9 item 9 above "Not at all", or active suicidal thoughts ticked). */
(function () {
  "use strict";
  var form = document.getElementById("intake-form");
  if (!form) { return; }
  var panel = document.getElementById("crisis-panel");
  var status = document.getElementById("autosave-status");
  var url = form.getAttribute("data-autosave-url");
  var timer = null;
  var inflight = false;
  var again = false;

  function safetySignal() {
    var item9 = form.querySelector('input[name="phq9_9"]:checked');
    var ideation = form.querySelector('input[name="suicidality"]');
    return (item9 !== null && parseInt(item9.value, 10) > 0) || (ideation !== null && ideation.checked);
  }

  /* Returns true when the panel has just been revealed. */
  function showCrisis() {
    if (panel && panel.hidden && safetySignal()) {
      panel.hidden = false;
      panel.setAttribute("role", "alert");
      panel.scrollIntoView({ behavior: "smooth", block: "center" });
      return true;
    }
    return false;
  }

  function say(text) { if (status) { status.textContent = text; } }

  function save() {
    if (inflight) { again = true; return; }
    inflight = true;
    again = false;
    var data = new FormData(form);
    data.delete("action");
    fetch(url, { method: "POST", body: data, credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (result.ok) {
          say("Draft saved at " + result.body.saved_at + ".");
        } else {
          say("Not saved yet: " + (result.body.error || "please check your answers."));
        }
      })
      .catch(function () { say("Not saved: you seem to be offline. Your answers stay on this page."); })
      .then(function () {
        inflight = false;
        if (again) { schedule(); }
      });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(save, 1500);
  }

  form.addEventListener("change", function () {
    if (showCrisis()) {
      window.clearTimeout(timer);
      save();  // at once: saving the answer is what alerts the team
    } else {
      schedule();
    }
  });
  form.addEventListener("input", function () { schedule(); });
  form.addEventListener("submit", function () { window.clearTimeout(timer); });
})();
