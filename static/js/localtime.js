// Show <time> elements in the visitor's own time zone (the server renders the retreat's zone).
(function () {
  "use strict";
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var dateFmt = { weekday: "short", day: "2-digit", month: "short", year: "numeric" };
  var dateTimeFmt = { weekday: "short", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  function apply(selector, opts) {
    document.querySelectorAll(selector).forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(undefined, opts); el.title = "Your time zone: " + zone; }
    });
  }
  apply("time[data-local-date]", dateFmt);
  apply("time[data-local-datetime]", dateTimeFmt);
  document.querySelectorAll("[data-tz-note]").forEach(function (el) { el.textContent = "Times are shown in your time zone (" + zone + ")."; });
})();
