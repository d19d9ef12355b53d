/* Consult booking: progressive enhancement only. The pages work without this file.
 * - Shows times in the visitor's own zone: when the page was not given a zone explicitly,
 *   detect the browser's IANA zone and reload with ?tz=<zone> (once).
 * - Picker controls apply on change (the "Show times" button is hidden).
 */
(function () {
  "use strict";

  // Browsers (ICU) still report some zones by their old names; show the current IANA name.
  var CURRENT_NAMES = {
    "Asia/Calcutta": "Asia/Kolkata", "Asia/Katmandu": "Asia/Kathmandu", "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Rangoon": "Asia/Yangon", "Europe/Kiev": "Europe/Kyiv", "Europe/Uzhgorod": "Europe/Kyiv",
    "Europe/Zaporozhye": "Europe/Kyiv", "America/Godthab": "America/Nuuk", "Atlantic/Faeroe": "Atlantic/Faroe",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires", "America/Cordoba": "America/Argentina/Cordoba",
    "America/Mendoza": "America/Argentina/Mendoza", "America/Indianapolis": "America/Indiana/Indianapolis",
    "America/Louisville": "America/Kentucky/Louisville", "Pacific/Truk": "Pacific/Chuuk",
    "Pacific/Ponape": "Pacific/Pohnpei", "Africa/Asmera": "Africa/Asmara", "Asia/Dacca": "Asia/Dhaka"
  };

  function detectedZone() {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
    return CURRENT_NAMES[zone] || zone;
  }

  function hasOption(select, value) {
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) return true;
    }
    return false;
  }

  var root = document.querySelector("[data-booking]");
  if (!root) return;

  var select = root.querySelector("[data-tz-select]");
  var zone = detectedZone();
  var url = new URL(window.location.href);
  if (root.getAttribute("data-tz-chosen") === "0" && select && zone && !url.searchParams.has("tz")) {
    if (select.value !== zone && hasOption(select, zone)) {
      url.searchParams.set("tz", zone);
      window.location.replace(url.toString());
      return;
    }
  }

  var forms = root.querySelectorAll("form[data-autosubmit]");
  Array.prototype.forEach.call(forms, function (form) {
    Array.prototype.forEach.call(form.querySelectorAll("[data-js-hide]"), function (el) {
      el.hidden = true;
    });
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (el) {
      el.addEventListener("change", function () {
        form.submit();
      });
    });
  });
})();
