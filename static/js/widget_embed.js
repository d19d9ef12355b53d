// The snippet a practice pastes into its website:
//   <script src="https://APP/widget.js" data-retreat-widget="consult" async></script>
// It inserts the booking iframe after itself and follows the height the frame reports, accepting
// messages only from the app's origin and from that frame.
(function () {
  "use strict";
  var WIDGETS = { consult: "/widget/consult" };
  document.querySelectorAll("script[data-retreat-widget]").forEach(function (script) {
    if (script.getAttribute("data-retreat-widget-ready")) { return; }
    var path = WIDGETS[script.getAttribute("data-retreat-widget")];
    if (!path) { return; }
    script.setAttribute("data-retreat-widget-ready", "1");
    var appOrigin = new URL(script.src, document.baseURI).origin;
    var frame = document.createElement("iframe");
    frame.src = appOrigin + path + "?origin=" + encodeURIComponent(window.location.origin);
    frame.title = script.getAttribute("data-title") || "Book a free consultation";
    frame.style.cssText = "display:block;width:100%;border:0;min-height:320px;height:640px;";
    script.parentNode.insertBefore(frame, script.nextSibling);
    window.addEventListener("message", function (event) {
      if (event.origin !== appOrigin || event.source !== frame.contentWindow) { return; }
      var data = event.data;
      if (data && data.type === "retreat-widget:height" && typeof data.height === "number" && data.height > 0 && data.height < 20000) {
        frame.style.height = Math.ceil(data.height) + "px";
      }
    });
  });
})();
