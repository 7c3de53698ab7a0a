// "Nearest to me": ask the browser where the phone is, then list the stations around it.
(function () {
  "use strict";
  var button = document.getElementById("locate");
  if (!button) { return; }
  if (!navigator.geolocation) { button.hidden = true; return; }
  button.addEventListener("click", function () {
    navigator.geolocation.getCurrentPosition(function (position) {
      var lat = position.coords.latitude.toFixed(6), lon = position.coords.longitude.toFixed(6);
      window.location.href = "/app/stations?lat=" + lat + "&lon=" + lon;
    }, function () { button.textContent = button.dataset.failed; }, { timeout: 10000 });
  });
})();
