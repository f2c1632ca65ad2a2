/**
 * Threshold's service worker: shows Web Push notifications (alarms, "ask me first") and opens
 * the right page when one is tapped. It caches nothing: the app always comes from the server.
 *
 * Push payload (JSON): {title, body, tag, url, homeId, sessionId, alarmType}.
 */

self.addEventListener('install', () => {
  // A new version takes over at once; there is no cached state to migrate.
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

/** Reads the payload; a push without valid JSON still shows something rather than nothing. */
function payloadOf(event) {
  if (!event.data) return {};
  try {
    const p = event.data.json();
    return p && typeof p === 'object' ? p : {};
  } catch {
    return { body: event.data.text() };
  }
}

self.addEventListener('push', (event) => {
  const p = payloadOf(event);
  const isAlarm = typeof p.alarmType === 'string' && p.alarmType.length > 0;
  const tag = typeof p.tag === 'string' && p.tag ? p.tag : undefined;
  const options = {
    body: typeof p.body === 'string' ? p.body : '',
    icon: '/favicon.svg',
    badge: '/favicon.svg',
    data: { url: typeof p.url === 'string' && p.url ? p.url : '/' },
    // An alarm stays on screen until someone deals with it.
    requireInteraction: isAlarm,
  };
  if (tag) {
    options.tag = tag;
    options.renotify = true;
  }
  event.waitUntil(
    self.registration.showNotification(
      typeof p.title === 'string' && p.title ? p.title : 'Threshold',
      options,
    ),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const raw = (event.notification.data && event.notification.data.url) || '/';
  // Only pages of this app: a payload cannot send the owner elsewhere.
  const target = new URL(raw, self.location.origin);
  const url = target.origin === self.location.origin ? target.href : self.location.origin + '/';
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      for (const w of windows) {
        if (w.url === url && 'focus' in w) return w.focus();
      }
      for (const w of windows) {
        if (new URL(w.url).origin === self.location.origin && 'navigate' in w) {
          const navigated = await w.navigate(url);
          return (navigated || w).focus();
        }
      }
      return self.clients.openWindow(url);
    })(),
  );
});
