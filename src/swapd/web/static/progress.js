// A swap under way: when the server says its state changed (the pack left the slot, or the
// offer was given up), reload the receipt, which then shows what happened.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.EventSource) { return; }
  var state = document.getElementById("state");
  var source = new EventSource(box.dataset.live);
  source.addEventListener("state", function (event) {
    var now = JSON.parse(event.data).state;
    if (now && now !== "offered") {
      source.close();
      state.textContent = state.dataset.done;
      window.location.reload();
    }
  });
})();
