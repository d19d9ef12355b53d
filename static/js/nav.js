// The main menu: disclosure buttons for its groups and, on a small screen, one Menu button.
// Without JavaScript every link is listed (grouped under plain labels); this script adds the
// buttons. Escape closes what is open and returns focus to its button.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  function setOpen(button, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    var target = document.getElementById(button.getAttribute("aria-controls"));
    if (target) { target.classList.toggle("is-open", open); }
  }
  function init() {
    var nav = document.querySelector("[data-nav]");
    if (!nav) { return; }
    var toggle = nav.querySelector(".nav-toggle");
    var groups = Array.prototype.slice.call(nav.querySelectorAll(".nav-group-button"));
    groups.forEach(function (button) { button.hidden = false; });
    if (toggle) { toggle.hidden = false; }
    function closeGroups(except) {
      groups.forEach(function (b) { if (b !== except) { setOpen(b, false); } });
    }
    groups.forEach(function (button) {
      button.addEventListener("click", function () {
        var open = button.getAttribute("aria-expanded") !== "true";
        closeGroups(button);
        setOpen(button, open);
      });
    });
    if (toggle) {
      toggle.addEventListener("click", function () {
        var open = toggle.getAttribute("aria-expanded") !== "true";
        setOpen(toggle, open);
        if (!open) { closeGroups(null); }
      });
    }
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") { return; }
      var openGroup = groups.filter(function (b) { return b.getAttribute("aria-expanded") === "true"; })[0];
      if (openGroup) { setOpen(openGroup, false); openGroup.focus(); return; }
      if (toggle && toggle.getAttribute("aria-expanded") === "true") { setOpen(toggle, false); toggle.focus(); }
    });
    document.addEventListener("click", function (event) {
      if (!nav.contains(event.target)) { closeGroups(null); }
    });
    nav.addEventListener("focusout", function (event) {
      // On a wide screen a group closes when focus leaves it (Tab past its last link).
      if (toggle && getComputedStyle(toggle).display !== "none") { return; }
      var next = event.relatedTarget;
      groups.forEach(function (b) {
        var li = b.parentNode;
        if (b.getAttribute("aria-expanded") === "true" && next && !li.contains(next)) { setOpen(b, false); }
      });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
