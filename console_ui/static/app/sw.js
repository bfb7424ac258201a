// openblynk app's service worker (scope /app): keeps the app shell so the app opens at once and
// offline. Only the shell is cached; data (/app/api, /api, /live) always goes to the network,
// so nothing the app shows as a value ever comes from this cache.
"use strict";

const CACHE = "openblynk-app-v3";
const SHELL = [
  "/app",
  "/app/manifest.webmanifest",
  "/static/console/app/app.js",
  "/static/console/app/widgets.js",
  "/static/console/widget_props.js",
  "/static/console/app/app.css",
  "/static/console/app/icon.svg",
  "/static/console/app/icon-192.png",
  "/static/console/app/apple-touch-icon.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("openblynk-app-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

// The shell: answered from the cache at once and refreshed from the network behind it
// (stale-while-revalidate), so the next start has what the server serves now.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const cached = await cache.match(url.pathname);
    const fresh = fetch(event.request).then((res) => {
      if (res.ok && !res.redirected) cache.put(url.pathname, res.clone());
      return res;
    });
    if (cached) {
      event.waitUntil(fresh.catch(() => undefined));
      return cached;
    }
    return fresh;
  }));
});
