// 新消息提醒: a system notification and a soft chime when something needs the
// user while they are looking elsewhere (the tab hidden or the window not
// focused).  A 秒回 listener with the console in a background tab otherwise
// learns of a new client from the breach; a seeker waiting in another tab
// misses the reply they were waiting for.
//
// * Preferences live on the device (localStorage), like the browser's own
//   permission they depend on: 系统通知, 提示音, 显示对方昵称.
// * A notification never carries message text, and names only when asked:
//   a lock screen or a shared desk is not private.
// * Notifications go through the service worker (/sw.js) where there is one:
//   Chrome on Android has no `new Notification()`, and a click on a
//   notification must focus or open the right page even after the tab closed.
// * Two tabs of one person (console + chat) raise one notification per
//   conversation (same tag) and one chime (a shared timestamp).
// * 关闭页面后也提醒 (Web Push) reaches the device when no page is open: the
//   browser subscribes at its vendor's push service, the server keeps the
//   subscription for this sign-in only (signing out ends it) and sends
//   notices with the same tags, so the service worker never shows one twice.

import { api } from "./common.js";

const KEY = "mh-notify";
const CHIME_KEY = "mh-chime-at";
const SW_URL = "/sw.js";

function stored() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "{}") || {};
  } catch {
    return {};
  }
}

/** The role's defaults: a listener's chime is on (the reply clock is running), a seeker's off. */
export function prefs(role) {
  return { system: false, sound: role !== "seeker", names: false, ...stored() };
}

export function setPrefs(patch) {
  localStorage.setItem(KEY, JSON.stringify({ ...stored(), ...patch }));
}

export const supported = () => "Notification" in window;
export const permission = () => (supported() ? Notification.permission : "unsupported");

// Each tab's claim is a key of its own ("mh-watching:<tab>:<what>" → time):
// one shared object, read, changed and written back by every tab, lost
// updates — a tab that had just looked away came back into it from another
// tab's stale copy and kept its siblings quiet for seconds.
const WATCH_PREFIX = "mh-watching:";
const WATCH_FRESH_MS = 2500;
const WATCH_GONE_MS = 60_000; // a claim this old is a closed (or crashed) tab's: removed
const TAB = Math.random().toString(36).slice(2, 10);

const tabAway = () => document.visibilityState !== "visible" || !document.hasFocus();

/** What is being looked at, by any tab: { what: last claim time }. */
function watching() {
  const w = {};
  const now = Date.now();
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const k = localStorage.key(i);
    if (!k || !k.startsWith(WATCH_PREFIX)) continue;
    const at = Number(localStorage.getItem(k)) || 0;
    if (now - at > WATCH_GONE_MS) {
      localStorage.removeItem(k);
      continue;
    }
    const what = k.slice(k.indexOf(":", WATCH_PREFIX.length) + 1);
    w[what] = Math.max(w[what] || 0, at);
  }
  return w;
}

/**
 * This tab shows `what` ("inbox": every conversation; a conversation id; "cases"):
 * while it is looked at it says so every second, so the person's other tabs
 * do not ring for what is already in front of them.
 */
export function watch(what) {
  const key = `${WATCH_PREFIX}${TAB}:${what}`;
  const beat = () => {
    // Looking away takes the claim back at once (another tab on the same view renews its own within 1 s).
    if (tabAway()) localStorage.removeItem(key);
    else localStorage.setItem(key, String(Date.now()));
  };
  beat();
  setInterval(() => tabAway() || beat(), 1000);
  document.addEventListener("visibilitychange", beat);
  window.addEventListener("focus", beat);
  window.addEventListener("blur", beat);
  window.addEventListener("pagehide", () => localStorage.removeItem(key));
}

/** Is the person looking elsewhere than at `topic` (a conversation id, "cases")? */
export function away(topic) {
  if (!tabAway()) return false;
  const w = watching();
  const seen = (key) => Date.now() - (w[key] || 0) < WATCH_FRESH_MS;
  return !(seen(topic) || (topic !== "cases" && seen("inbox")));
}

let registration = null;

/** The service worker that shows notifications and handles their clicks; none where unsupported. */
async function worker() {
  if (registration || !("serviceWorker" in navigator)) return registration;
  try {
    registration = await navigator.serviceWorker.register(SW_URL, { scope: "/" });
    await navigator.serviceWorker.ready;
  } catch {
    registration = null; // plain `new Notification()` below
  }
  return registration;
}

async function show(title, { body, tag, url, urgent }) {
  const options = { body, tag, renotify: true, requireInteraction: !!urgent, data: { url }, lang: "zh-CN", icon: "/static/favicon.svg" };
  const reg = await worker();
  if (reg) {
    await reg.showNotification(title, options);
    return;
  }
  const n = new Notification(title, options);
  n.onclick = () => {
    window.focus();
    if (url && location.pathname !== url) location.href = url;
    n.close();
  };
}

let audio = null;

/** A WebAudio context, once the page has had a user gesture (autoplay rules). */
export function audioContext() {
  if (!audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || (navigator.userActivation && !navigator.userActivation.hasBeenActive)) return null;
    audio = new Ctx();
  }
  if (audio.state === "suspended") audio.resume().catch(() => {});
  return audio;
}

/** Tones as [frequency Hz, start s, length s], each a soft sine with a quick fade. */
export function tones(pattern, volume = 0.2) {
  const ac = audioContext();
  if (!ac) return false;
  const t0 = ac.currentTime + 0.02;
  for (const [freq, at, len] of pattern) {
    const start = t0 + at;
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(volume, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + len - 0.02);
    osc.connect(gain).connect(ac.destination);
    osc.start(start);
    osc.stop(start + len);
  }
  return true;
}

const SOFT = [[660, 0, 0.18], [880, 0.16, 0.26]];

function chime() {
  // One chime for all of this person's tabs: the first to ring takes the moment.
  const last = Number(localStorage.getItem(CHIME_KEY) || 0);
  if (Date.now() - last < 1500) return;
  localStorage.setItem(CHIME_KEY, String(Date.now()));
  if (tones(SOFT, 0.15)) {
    const root = document.documentElement;
    root.dataset.chimes = String(Number(root.dataset.chimes || 0) + 1);
  }
}

/**
 * Tell the person, if they are looking elsewhere than at `topic` (or
 * `always`): a system notification if they turned those on, and the chime if
 * that is on.  `body` is a sentence without message text or names; `named`
 * the same with the other person's name, used only when they chose names.
 * Returns whether anything was raised.
 */
export async function notify({ role, topic, title = "秒回", body, named, tag, url, urgent = false, always = false, chime: ring = true }) {
  if (!always && !away(topic)) return false;
  const p = prefs(role);
  const sound = ring && p.sound;
  if (sound) chime();
  if (!p.system || permission() !== "granted") return sound;
  const text = named && p.names ? named : body;
  try {
    await show(title, { body: text, tag, url, urgent });
  } catch {
    return sound; // the browser refused (e.g. permission withdrawn meanwhile)
  }
  return true;
}

const warned = new Set(); // order id + pending_since: one warning per unanswered message

/**
 * The listener's reply clock passed 70 % of the window (orderbar.js,
 * console_orders.js): a warning while there is still time to answer.
 */
export function replyClockWarning(o, leftMs) {
  const key = `${o.id}:${o.pending_since}`;
  if (warned.has(key) || !away(o.conversation_id)) return; // looked at: they can see the clock
  warned.add(key);
  const secs = Math.max(1, Math.round(leftMs / 1000));
  notify({
    role: "listener",
    topic: o.conversation_id,
    title: "秒回 · 该回复了",
    body: `还有 ${secs} 秒就超出回复时限`,
    tag: `mh-conv-${o.conversation_id}`,
    url: `/chat/${o.conversation_id}`,
    urgent: true,
  });
}

export const pushSupported = () => "serviceWorker" in navigator && "PushManager" in window;

/** base64url → the bytes `applicationServerKey` wants. */
function keyBytes(b64u) {
  const s = atob(b64u.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64u.length % 4)) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** The subscription was made with this key (not one from before the server's secret changed). */
function sameKey(sub, key) {
  const had = sub.options && sub.options.applicationServerKey;
  if (!had) return true; // the browser does not say: trust it
  const a = new Uint8Array(had);
  const b = keyBytes(key);
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Whether this device gets pushes for this sign-in: the browser holds a
 * subscription made with the server's current key, and the server holds it for this session. */
export async function pushOn() {
  if (!pushSupported()) return false;
  const reg = await worker();
  const sub = reg && (await reg.pushManager.getSubscription());
  if (!sub) return false;
  const { public_key: key } = await api("/api/push/key");
  if (!key || !sameKey(sub, key)) return false;
  const mine = await api("/api/push/devices");
  return mine.some((d) => d.this_sign_in);
}

/** Subscribe this device (after the notification permission is granted). Throws with a reason to show. */
export async function enablePush() {
  const { enabled, public_key: key } = await api("/api/push/key");
  if (!enabled) throw new Error("本站没有开启关闭页面后的提醒。");
  const reg = await worker();
  if (!reg) throw new Error("这个浏览器不支持关闭页面后的提醒。");
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub, key)) {
    await sub.unsubscribe(); // made with the server's old key: the push service would refuse it
    sub = null;
  }
  try {
    sub = sub || (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }));
  } catch {
    throw new Error("这个浏览器现在收不到推送（无痕模式，或连不上它的推送服务时如此）；页面开着时仍会提醒。");
  }
  await api("/api/push/subscription", { method: "PUT", body: sub.toJSON() });
}

export async function disablePush() {
  const reg = await worker();
  const sub = reg && (await reg.pushManager.getSubscription());
  if (!sub) return;
  await api("/api/push/unsubscribe", { method: "POST", body: { endpoint: sub.endpoint } });
  await sub.unsubscribe();
}

/** On page load: a person who turned notifications on gets the worker back at once. */
export function resume(role) {
  if (prefs(role).system && permission() === "granted") worker();
}

/** The 新消息提醒 panel (templates/_notify.html). */
export function mountSettings(role) {
  const root = document.getElementById("notify-settings");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const systemBtn = $("notify-system");
  const stateEl = $("notify-state");
  const noteEl = $("notify-note");
  const sound = $("notify-sound");
  const names = $("notify-names");
  const pushRow = $("notify-push-row");
  const pushBtn = $("notify-push");
  const pushNote = $("notify-push-note");
  let pushing = false; // this device gets pushes for this sign-in (asked of the browser and the server)

  let answer = null; // the browser's answer to this page's request, if it asked

  function render() {
    const p = prefs(role);
    const perm = answer === "denied" ? "denied" : permission();
    const on = p.system && perm === "granted";
    systemBtn.hidden = perm === "unsupported";
    systemBtn.textContent = on ? "关闭" : "开启";
    systemBtn.setAttribute("aria-pressed", on ? "true" : "false");
    systemBtn.disabled = perm === "denied" && !on;
    const note = {
      unsupported: "这个浏览器不支持系统通知；添加到主屏幕或换用 Chrome、Edge、Firefox 后可开启。",
      denied: "浏览器已禁止本站的通知，请在浏览器的网站设置里允许后再开启。",
      default: answer === "default" ? "浏览器没有给出通知权限，可以再点一次“开启”。" : "",
    }[perm] || "";
    noteEl.hidden = !note;
    noteEl.textContent = note;
    if (sound) sound.checked = p.sound;
    if (names) {
      names.checked = p.names;
      names.disabled = !on;
    }
    pushRow.hidden = !on || !pushSupported();
    root.dataset.push = on && pushing ? "on" : "off";
    pushBtn.textContent = pushing ? "关闭" : "开启";
    pushBtn.setAttribute("aria-pressed", pushing ? "true" : "false");
    const labels = [on ? "系统通知" : null, on && pushing ? "关闭页面后" : null, p.sound && sound ? "提示音" : null]
      .filter(Boolean);
    stateEl.textContent = labels.length ? `：${labels.join(" + ")}` : "：未开启";
    root.dataset.state = on ? "on" : "off";
  }

  const pushNoteSay = (text) => {
    pushNote.hidden = !text;
    pushNote.textContent = text;
  };

  async function setPush(want) {
    pushBtn.disabled = true;
    pushNoteSay("");
    try {
      if (want) await enablePush();
      else await disablePush();
      pushing = want;
      if (want) pushNoteSay("已开启：锁屏或关掉页面时，新消息也会提醒你（不显示内容）。");
    } catch (e) {
      pushNoteSay(e.message || "没有成功，请稍后再试。");
    } finally {
      pushBtn.disabled = false;
      render();
    }
  }

  pushBtn.addEventListener("click", () => setPush(!pushing));

  systemBtn.addEventListener("click", async () => {
    if (prefs(role).system && permission() === "granted") {
      setPrefs({ system: false });
      if (pushing) await setPush(false); // no system notifications: none when closed either
      render();
      return;
    }
    answer = permission() === "granted" ? "granted" : await Notification.requestPermission();
    if (answer === "granted") {
      setPrefs({ system: true });
      await worker();
      render();
      await notify({ role, body: "新消息提醒已开启，不会显示消息内容。", tag: "mh-test", always: true });
    } else render();
  });
  if (sound) sound.addEventListener("change", () => {
    setPrefs({ sound: sound.checked });
    if (sound.checked) tones(SOFT, 0.15); // hear what it will sound like
    render();
  });
  if (names) names.addEventListener("change", () => {
    setPrefs({ names: names.checked });
    render();
  });
  render();
  if (prefs(role).system && permission() === "granted" && pushSupported()) {
    pushOn()
      .then((v) => {
        pushing = v;
        render();
      })
      .catch(() => {});
  }
}
