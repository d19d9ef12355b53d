// Time-zone pickers (<select data-zone-picker>): the zone this browser is in comes first, and a
// search box above the list filters it by name or offset ("berlin", "+05:30"). Without JavaScript
// the plain select works as it is. A fresh sign-up form (<select data-autodetect-tz>) also
// preselects the browser's zone.
(function () {
  "use strict";
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var aliases = { "Asia/Calcutta": "Asia/Kolkata", "Asia/Saigon": "Asia/Ho_Chi_Minh", "Asia/Katmandu": "Asia/Kathmandu",
                  "Europe/Kiev": "Europe/Kyiv", "Asia/Rangoon": "Asia/Yangon", "America/Buenos_Aires": "America/Argentina/Buenos_Aires" };
  zone = aliases[zone] || zone;
  var count = 0;
  document.querySelectorAll("select[data-zone-picker]").forEach(function (select) {
    count += 1;
    var detected = null;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) { detected = select.options[i]; break; }
    }
    if (detected) {
      detected.textContent = detected.textContent + " · your device";
      select.insertBefore(detected, select.options[0]);
      if (select.hasAttribute("data-autodetect-tz") && !select.closest("form").querySelector(".has-error")) {
        select.value = zone;
        var note = document.getElementById(select.id + "-detected");
        if (note) { note.hidden = false; }
      }
    }
    var search = document.createElement("input");
    search.type = "search";
    search.className = "zone-search";
    search.id = (select.id || "zone") + "-search-" + count;
    search.setAttribute("aria-label", "Find a zone by city or offset");
    search.setAttribute("aria-controls", select.id);
    search.placeholder = "Search: a city or an offset like +01:00";
    search.autocomplete = "off";
    var status = document.createElement("p");
    status.className = "hint";
    status.setAttribute("aria-live", "polite");
    select.parentNode.insertBefore(search, select);
    select.parentNode.insertBefore(status, select.nextSibling);
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase().replace(/_/g, " ");
      var shown = 0, first = null;
      Array.prototype.forEach.call(select.options, function (opt) {
        var text = (opt.textContent + " " + opt.value).toLowerCase().replace(/_/g, " ");
        var match = !q || text.indexOf(q) !== -1;
        opt.hidden = !match;
        if (match) { shown += 1; if (!first) { first = opt; } }
      });
      if (q && first && select.selectedOptions[0] && select.selectedOptions[0].hidden) { select.value = first.value; }
      status.textContent = q ? (shown === 0 ? "No zone matches “" + search.value + "”." : shown + " zones match.") : "";
    });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); select.focus(); }
    });
  });
})();
