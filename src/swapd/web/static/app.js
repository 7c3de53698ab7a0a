// Installable: register the app's service worker (scope /app) where the browser has them.
(function () {
  "use strict";
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app" }).catch(function () {});
  }
})();
