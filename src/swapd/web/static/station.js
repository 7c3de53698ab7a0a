// The live slot grid of a station page: the server sends the whole grid as JSON (event "slots")
// whenever it changes; this replaces each slot's class and texts. EventSource reconnects by itself.
(function () {
  "use strict";
  var grid = document.getElementById("slots");
  var badge = document.getElementById("live");
  var charged = document.getElementById("charged");
  if (!grid || !window.EventSource) { return; }
  var FIELDS = ["status_text", "pack_serial", "soc", "soh"];
  var CLASS = { status_text: "status", pack_serial: "serial", soc: "soc", soh: "soh" };

  function text(cell, field) {
    var value = cell[field] || "";
    if (field === "soc" && value) { return grid.dataset.socLabel + " " + value; }
    if (field === "soh" && value) { return grid.dataset.sohLabel + " " + value; }
    return value;
  }

  function render(cells) {
    var ready = 0;
    cells.forEach(function (cell) {
      var li = document.getElementById("slot-" + cell.slot_no);
      if (!li) { return; }
      li.className = "slot " + cell.status;
      FIELDS.forEach(function (field) {
        var span = li.querySelector("." + CLASS[field]);
        if (span) { span.textContent = text(cell, field); }
      });
      if (cell.status === "ready") { ready += 1; }
    });
    if (charged) { charged.textContent = ready.toLocaleString(document.documentElement.lang); }
  }

  var source = new EventSource(grid.dataset.live);
  source.addEventListener("open", function () { badge.dataset.state = "open"; });
  source.addEventListener("error", function () { badge.dataset.state = "reconnecting"; });
  source.addEventListener("slots", function (event) {
    badge.dataset.state = "open";
    render(JSON.parse(event.data));
  });
  source.addEventListener("gone", function () { source.close(); badge.dataset.state = "closed"; });
})();
