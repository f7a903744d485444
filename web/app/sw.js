// The service worker: keeps the app shell so /app opens with no network once it has been loaded.
// Shell files are answered from the cache at once and refreshed from the network behind it
// (stale-while-revalidate); bumping VERSION drops old caches. API calls (/v1/...) are never cached or
// answered here: the page's outbox (outbox.js) is what copes with being offline.
const VERSION = "hp-app-1";
const SHELL = ["./", "index.html", "app.css", "app.js", "api.js", "outbox.js", "geo.js", "manifest.webmanifest", "icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith("/app/")) {
    return; // the network, untouched
  }
  event.respondWith((async () => {
    const cache = await caches.open(VERSION);
    const cached = await cache.match(event.request, { ignoreSearch: true });
    const fresh = fetch(event.request).then((resp) => {
      if (resp.ok) cache.put(event.request, resp.clone());
      return resp;
    });
    if (cached) {
      event.waitUntil(fresh.catch(() => undefined));
      return cached;
    }
    return fresh;
  })());
});
