// The live swap feed: the server sends the swaps newer than the newest shown (event "swaps");
// each becomes a row at the top of the table. EventSource reconnects by itself.
(function () {
  "use strict";
  var table = document.getElementById("feed");
  var badge = document.getElementById("live");
  if (!table || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var KEEP = 200;

  function cell(row, text, href) {
    var td = row.insertCell(-1);
    if (href) {
      var a = document.createElement("a");
      a.href = href; a.textContent = text; td.appendChild(a);
    } else {
      td.textContent = text;
    }
  }

  var source = new EventSource(table.dataset.live);
  source.addEventListener("open", function () { badge.dataset.state = "open"; });
  source.addEventListener("error", function () { badge.dataset.state = "reconnecting"; });
  source.addEventListener("swaps", function (event) {
    badge.dataset.state = "open";
    JSON.parse(event.data).forEach(function (s) {
      var row = body.insertRow(0);
      row.className = s.state + " new";
      cell(row, String(s.id), "/swaps/" + s.id);
      cell(row, s.at); cell(row, s.station_id); cell(row, s.rider_id);
      cell(row, s.state_text + (s.reason ? " · " + s.reason : ""));
    });
    while (body.rows.length > KEEP) { body.deleteRow(-1); }
  });
})();
