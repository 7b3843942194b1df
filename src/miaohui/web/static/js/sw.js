// The service worker behind 新消息提醒 (notify.js), served at /sw.js so that
// its scope is the whole site.  It shows notifications and, on a click,
// focuses the tab already on that page, else turns one of ours to it, else
// opens it.  It has no fetch handler: pages, API and sockets never pass
// through it, and nothing is cached.
//
// It also receives 关闭页面后也提醒's pushes (push/relay.py): a notice the
// server sends when the person has no page in front of them.  A page that
// is open but hidden may have told them the same already (same tag and
// title); then the push shows nothing more.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** Only a path on this site; anything else opens the home page. */
function target(data) {
  const url = data && typeof data.url === "string" ? data.url : "/";
  return url.startsWith("/") && !url.startsWith("//") && !url.startsWith("/\\") ? url : "/";
}

const RECENT_MS = 60_000;
const text = (v, fallback) => (typeof v === "string" && v ? v.slice(0, 200) : fallback);

self.addEventListener("push", (event) => {
  let n = {};
  try {
    n = (event.data && event.data.json()) || {};
  } catch {
    n = {};
  }
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      if (windows.some((c) => c.visibilityState === "visible" && c.focused)) return; // in front of them already
      const tag = text(n.tag, "mh-push");
      const title = text(n.title, "秒回");
      const shown = await self.registration.getNotifications({ tag });
      // The page told them already (the same notice, within the minute); a
      // different one under the tag (the reply clock's warning after "new
      // message") replaces it.
      if (shown.some((x) => x.title === title && Date.now() - x.timestamp < RECENT_MS)) return;
      await self.registration.showNotification(title, {
        body: text(n.body, "你有一条新消息"),
        tag,
        renotify: true,
        requireInteraction: !!n.urgent,
        data: { url: target(n) },
        lang: "zh-CN",
        icon: "/static/favicon.svg",
      });
    })(),
  );
});

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
