// The rider app's service worker: it makes the app installable and answers with a short
// offline page when the network is gone. Nothing is cached: balances must be fresh.
self.addEventListener("install", function (event) { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
self.addEventListener("fetch", function (event) {
  if (event.request.mode !== "navigate") { return; }
  event.respondWith(fetch(event.request).catch(function () {
    return new Response(
      "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>" +
      "<title>swapd</title><p style='font-family:system-ui;padding:24px'>Offline: swapd needs " +
      "the network to swap. / 오프라인: 배터리 교환에는 네트워크가 필요합니다.</p>",
      { headers: { "Content-Type": "text/html; charset=utf-8" } });
  }));
});
