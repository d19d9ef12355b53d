// Tables: each cell learns its column's name (shown beside it when rows stack on a small
// screen); columns marked .col-low fold into a per-row "More" disclosure when the table would
// not fit its card; a table that fits lets its head row stick to the window (its wrapper stops
// being a scroll box), and one that still needs sideways scrolling gets a focusable, named region.
(function () {
  "use strict";
  var STACKED = window.matchMedia("(max-width: 640px)");
  function cellText(cell) { return cell.textContent.replace(/\s+/g, " ").trim(); }

  function addMoreColumn(table, heads) {
    var low = [];
    Array.prototype.forEach.call(table.querySelectorAll("thead th"), function (th, i) {
      if (th.classList.contains("col-low")) { low.push(i); }
    });
    if (!low.length) { return false; }
    var headRow = table.querySelector("thead tr");
    var more = document.createElement("th");
    more.scope = "col"; more.className = "col-more"; more.textContent = "More";
    headRow.appendChild(more);
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      var cells = tr.children;
      if (cells.length !== heads.length) { return; }  // a "nothing here" row spanning every column
      var td = document.createElement("td");
      td.className = "col-more"; td.setAttribute("data-label", "More");
      var details = document.createElement("details");
      var summary = document.createElement("summary");
      summary.textContent = "More";
      var owner = cells[0] ? cellText(cells[0]).slice(0, 60) : "";
      if (owner) {
        var hidden = document.createElement("span");
        hidden.className = "visually-hidden"; hidden.textContent = " about " + owner;
        summary.appendChild(hidden);
      }
      var dl = document.createElement("dl");
      low.forEach(function (i) {
        var dt = document.createElement("dt"); dt.textContent = heads[i];
        var dd = document.createElement("dd");
        Array.prototype.forEach.call(cells[i].childNodes, function (n) { dd.appendChild(n.cloneNode(true)); });
        if (!cellText(dd)) { dd.textContent = "—"; }
        dl.appendChild(dt); dl.appendChild(dd);
      });
      details.appendChild(summary); details.appendChild(dl); td.appendChild(details);
      tr.appendChild(td);
    });
    return true;
  }

  var foldable = [];
  document.querySelectorAll("table.table").forEach(function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) { return th.textContent.trim(); });
    if (heads.length) {
      table.classList.add("table-stack");
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        Array.prototype.forEach.call(tr.children, function (cell, i) {
          if (!cell.hasAttribute("data-label") && heads[i]) { cell.setAttribute("data-label", heads[i]); }
        });
      });
      if (addMoreColumn(table, heads)) { foldable.push(table); }
    }
  });

  function overflows(wrap) { return wrap.scrollWidth > wrap.clientWidth + 1; }

  function fit() {
    foldable.forEach(function (table) {
      var wrap = table.closest(".table-wrap");
      table.classList.remove("table-folded");
      if (STACKED.matches || !wrap) { return; }
      // Measured with ordinary word breaking: a table that only fits by breaking words mid-way
      // (squeezed columns) folds its low-priority columns too.
      table.classList.add("table-measuring");
      var tooWide = overflows(wrap);
      table.classList.remove("table-measuring");
      if (tooWide) { table.classList.add("table-folded"); }
    });
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      wrap.classList.remove("table-fits");
      if (overflows(wrap)) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        if (!wrap.hasAttribute("aria-label")) {
          var caption = wrap.querySelector("caption");
          wrap.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table (scrolls sideways)");
        }
      } else {
        wrap.classList.add("table-fits");
        if (wrap.getAttribute("tabindex") === "0") { wrap.removeAttribute("tabindex"); wrap.removeAttribute("role"); }
      }
    });
  }
  fit();
  window.addEventListener("resize", fit);
})();
