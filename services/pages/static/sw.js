// The kiosk's service worker: the app shell comes from a cache named after this deploy's files, so a kiosk that
// boots with the network down still shows its welcome and queues check-ins. The server writes VERSION (a hash of
// the shell's contents) and SHELL into this file as it serves it; a deploy that changes a file changes this
// worker, the browser installs it beside the old one, and on activation the old caches go.
const VERSION = "__VERSION__";
const SHELL = __SHELL__;
const CACHE = `rcc-kiosk-${VERSION}`;

self.addEventListener("install", (event) => {
  // "no-cache": revalidated with the server (a 304 when unchanged), never yesterday's copy from the HTTP cache.
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "no-cache" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("rcc-kiosk-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

// Only the shell is answered from the cache (the page whatever its query, e.g. /kiosk?idle=30); the APIs always go
// to the network, so a check-in never gets a stale answer and the page's own queue handles a failure.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  const navigation = event.request.mode === "navigate" && url.pathname === "/kiosk";
  if (!navigation && !SHELL.includes(url.pathname)) return;
  event.respondWith(
    caches
      .open(CACHE)
      .then((cache) => cache.match(navigation ? "/kiosk" : url.pathname))
      .then((hit) => hit || fetch(event.request)),
  );
});
