// The service worker behind 新消息提醒 (notify.js), served at /sw.js so that
// its scope is the whole site.  It shows notifications and, on a click,
// focuses the tab already on that page, else turns one of ours to it, else
// opens it.  It has no fetch handler: pages, API and sockets never pass
// through it, and nothing is cached.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** Only a path on this site; anything else opens the home page. */
function target(data) {
  const url = data && typeof data.url === "string" ? data.url : "/";
  return url.startsWith("/") && !url.startsWith("//") && !url.startsWith("/\\") ? url : "/";
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const path = target(event.notification.data);
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const here = windows.find((c) => new URL(c.url).pathname === path);
      if (here) return here.focus();
      const ours = windows.find((c) => "navigate" in c);
      if (ours) {
        await ours.focus();
        return ours.navigate(path);
      }
      return self.clients.openWindow(path);
    })(),
  );
});
