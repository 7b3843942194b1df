// Leaving this device: what the person left in this browser — drafts and
// unsent messages (chat.js keeps both under "mh:<kind>:<user>:<conversation>")
// and the tabs' watch claims (notify.js) — goes with the session, so whoever
// uses a shared computer next finds none of it.  Device settings ("mh-notify",
// "mh-alarm-sound") stay.  Unsent messages are never dropped silently: the
// person is asked first, and may stay to let them go out.

function personalKeys() {
  const keys = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k && k.startsWith("mh:")) keys.push(k);
  }
  return keys;
}

function unsentCount(keys) {
  let n = 0;
  for (const k of keys.filter((k) => k.startsWith("mh:outbox:"))) {
    try {
      const v = JSON.parse(localStorage.getItem(k) || "[]");
      if (Array.isArray(v)) n += v.length;
    } catch {
      /* unreadable: nothing that could still be sent */
    }
  }
  return n;
}

function clear(keys) {
  for (const k of keys) localStorage.removeItem(k);
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const k = localStorage.key(i);
    if (k && k.startsWith("mh-watching")) localStorage.removeItem(k);
  }
}

try {
  if (document.querySelector('[data-testid="account-closed"]')) clear(personalKeys());
  const form = document.querySelector("form.logout");
  if (form) {
    form.addEventListener("submit", (ev) => {
      const keys = personalKeys();
      const unsent = unsentCount(keys);
      if (unsent && !confirm(`还有 ${unsent} 条消息没有发出。退出登录会删除它们，确定退出吗？`)) {
        ev.preventDefault();
        return;
      }
      clear(keys);
    });
  }
} catch {
  /* storage disabled: there is nothing to clear */
}
