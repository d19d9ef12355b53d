// Preselect the visitor's time zone in <select data-autodetect-tz> (only on a fresh form).
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!zone) { return; }
  var selects = document.querySelectorAll("select[data-autodetect-tz]");
  Array.prototype.forEach.call(selects, function (select) {
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) {
        select.value = zone;
        var note = document.getElementById(select.id + "-detected");
        if (note) { note.hidden = false; }
        return;
      }
    }
  });
})();
