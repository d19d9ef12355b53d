// Times in the visitor's locale (a de-DE browser reads 17:00, en-US 5:00 PM). The server writes
// <time datetime="..."> in 24-hour form; this rewrites the text with Intl.DateTimeFormat.
//   data-local-date / data-local-datetime: in the visitor's own zone.
//   data-venue-datetime data-tz="America/Denver": in the venue's zone; the visitor's own time
//   is shown beside it ([data-viewer-time]) when their zone differs.
(function () {
  "use strict";
  var locale = navigator.language || undefined;
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var dateFmt = { weekday: "short", day: "numeric", month: "short", year: "numeric" };
  var dateTimeFmt = { weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit", timeZoneName: "short" };
  function fmt(d, opts, tz) {
    var o = Object.assign({}, opts);
    if (tz) { o.timeZone = tz; }
    try { return new Intl.DateTimeFormat(locale, o).format(d); } catch (e) { return null; }
  }
  function apply(selector, opts) {
    document.querySelectorAll(selector).forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      var text = isNaN(d) ? null : fmt(d, opts, el.getAttribute("data-tz"));
      if (text) { el.textContent = text; if (!el.hasAttribute("data-tz")) { el.title = "Your time zone: " + zone; } }
    });
  }
  apply("time[data-local-date]", dateFmt);
  apply("time[data-local-datetime]", dateTimeFmt);
  apply("time[data-venue-datetime], [data-viewer-time] time[data-tz]", dateTimeFmt);
  document.querySelectorAll("time[data-venue-datetime]").forEach(function (el) {
    var venue = el.getAttribute("data-tz");
    var beside = el.parentNode.querySelector("[data-viewer-time]");
    if (!beside || !venue || venue === zone || !beside.hidden) { return; }
    var d = new Date(el.getAttribute("datetime"));
    var mine = fmt(d, dateTimeFmt, zone);
    if (mine) { beside.textContent = " · " + mine + " your time"; beside.hidden = false; }
  });
  document.querySelectorAll("[data-tz-note]").forEach(function (el) { el.textContent = "Times are shown in your time zone (" + zone + "); sessions held in person show the venue's time first."; });
})();
