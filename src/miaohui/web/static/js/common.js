// Shared helpers for every page: CSRF-aware fetch, presence labels, a
// reconnecting WebSocket.  Never put user data into innerHTML: use textContent.

export const PRESENCE_LABELS = { online: "在线", away: "离开", offline: "离线" };

export function getCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

export function csrfToken() {
  return getCookie("mh_csrf");
}

export class ApiError extends Error {
  constructor(message, status, code, detail = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail; // the whole error object (e.g. confirm_token)
  }
}

/** fetch JSON with the session cookie and the CSRF header; throws ApiError (Chinese message). */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("网络连接失败，请检查网络后重试", 0, "network");
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error;
    if (res.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    throw new ApiError((err && err.message) || `请求失败（${res.status}）`, res.status, err && err.code, err);
  }
  return data;
}

export function readBoot(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
}

/** Update a `.presence` element rendered by the _macros.html `presence` macro. */
export function setPresence(el, status) {
  if (!el) return;
  const s = PRESENCE_LABELS[status] ? status : "offline";
  el.dataset.status = s;
  el.classList.remove("presence-online", "presence-away", "presence-offline");
  el.classList.add(`presence-${s}`);
  const label = el.querySelector(".presence-label");
  if (label) label.textContent = PRESENCE_LABELS[s];
}

export function presenceEl(status) {
  const span = document.createElement("span");
  span.className = "presence";
  const dot = document.createElement("i");
  dot.className = "dot";
  dot.setAttribute("aria-hidden", "true");
  const label = document.createElement("span");
  label.className = "presence-label";
  span.append(dot, label);
  setPresence(span, status);
  return span;
}

const pad = (n) => String(n).padStart(2, "0");

// Times read in the platform's zone (settings.timezone, on <html data-tz>),
// as the server-rendered pages write them, whatever zone the device is in.
function zoneFormat() {
  const opts = { year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", hourCycle: "h23" };
  try {
    return new Intl.DateTimeFormat("en-US", { ...opts, timeZone: document.documentElement.dataset.tz || undefined });
  } catch {
    return new Intl.DateTimeFormat("en-US", opts); // an unknown zone name: the device's
  }
}
let fmt = null;

/** {y, mo, d, h, mi} of an instant in the platform's zone, or null. */
export function zoned(when) {
  const d = when instanceof Date ? when : new Date(when);
  if (Number.isNaN(d.getTime())) return null;
  fmt ||= zoneFormat();
  const p = Object.fromEntries(fmt.formatToParts(d).map((x) => [x.type, x.value]));
  return { y: +p.year, mo: +p.month, d: +p.day, h: +p.hour % 24, mi: +p.minute };
}

export function timeLabel(iso) {
  const z = zoned(iso);
  return z ? `${pad(z.h)}:${pad(z.mi)}` : "";
}

export function dayKey(iso) {
  const z = zoned(iso);
  return z ? `${z.y}-${z.mo}-${z.d}` : "";
}

/** 11月24日 21:05 (the year too when it is not this year). */
export function dateTimeLabel(iso) {
  const z = zoned(iso);
  if (!z) return "";
  const year = z.y === zoned(new Date()).y ? "" : `${z.y}年`;
  return `${year}${z.mo}月${z.d}日 ${pad(z.h)}:${pad(z.mi)}`;
}

export function relativeLabel(iso) {
  const z = zoned(iso);
  if (!z) return "";
  const now = new Date();
  if ((now - new Date(iso)) / 1000 < 60) return "刚刚";
  if (dayKey(iso) === dayKey(now)) return timeLabel(iso);
  if (dayKey(iso) === dayKey(new Date(now.getTime() - 86400000))) return "昨天";
  return z.y === zoned(now).y ? `${z.mo}月${z.d}日` : `${z.y}/${z.mo}/${z.d}`;
}

/**
 * A unique client id: a UUIDv7 (RFC 9562), 48 bits of Unix time in ms, then
 * 74 random bits. Time first because the server's idempotency index is led
 * by the client id: ids that grow with time add each message at the index's
 * right edge, where a random id (UUIDv4) rewrote a random page per message
 * (docs/performance.md, session 17). getRandomValues, unlike randomUUID,
 * also works outside a secure context.
 */
export function newClientId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70; // version 7
  b[8] = (b[8] & 0x3f) | 0x80; // variant 10
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const FATAL_CODES = new Set([4401, 4403]);

/**
 * A WebSocket that stays connected: exponential backoff with jitter, immediate
 * retry on the browser's `online` event and when the page becomes visible,
 * ping every 25 s and reconnect when no frame answers within 10 s (a dead
 * network does not always close the socket).
 *
 * states: "connecting" (first attempt), "open", "reconnecting", "offline", "closed" (fatal)
 */
export class LiveSocket {
  constructor({ url, onFrame, onOpen, onState, onFatal, pingMs = 25000, pongTimeoutMs = 10000 }) {
    this.url = url;
    this.onFrame = onFrame || (() => {});
    this.onOpen = onOpen || (() => {});
    this.onState = onState || (() => {});
    this.onFatal = onFatal || (() => {});
    this.pingMs = pingMs;
    this.pongTimeoutMs = pongTimeoutMs;
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.everOpen = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = false;
  }

  start() {
    window.addEventListener("offline", () => {
      if (this.stopped) return;
      this.drop(0);
    });
    window.addEventListener("online", () => {
      if (this.stopped) return;
      this.attempt = 0;
      if (this.isOpen) this.probe();
      else if (!this.ws) this.connect();
    });
    document.addEventListener("visibilitychange", () => {
      if (this.stopped || document.visibilityState !== "visible") return;
      if (this.isOpen) this.probe();
      else if (!this.ws) this.connect();
    });
    this.connect();
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    document.documentElement.dataset.live = s; // a hook for styles and tests
    this.onState(s);
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws || this.stopped) return;
    if (navigator.onLine === false) {
      this.setState("offline");
      this.scheduleRetry();
      return;
    }
    this.setState(this.everOpen ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    // A handshake into a black hole can hang for minutes: give up after the pong timeout.
    const openTimer = setTimeout(() => {
      if (this.ws === ws && ws.readyState !== WebSocket.OPEN) this.drop(0);
    }, this.pongTimeoutMs);
    ws.onopen = () => {
      clearTimeout(openTimer);
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.everOpen = true;
      this.setState("open");
      this.startPing();
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.alive();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame && frame.type === "pong") return;
      this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      clearTimeout(openTimer);
      if (this.ws !== ws) return;
      this.drop(ev.code);
    };
    ws.onerror = () => {};
  }

  /** Forget the current socket (closing it) and plan the next attempt. */
  drop(code) {
    const ws = this.ws;
    this.ws = null;
    this.stopPing();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
    if (FATAL_CODES.has(code)) {
      this.stopped = true;
      this.setState("closed");
      this.onFatal(code);
      return;
    }
    if (this.stopped) return;
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    this.scheduleRetry();
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  send(obj) {
    if (!this.isOpen) return false;
    try {
      this.ws.send(JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => this.probe(), this.pingMs);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  /** Send a ping; if nothing comes back in time, the link is dead: reconnect. */
  probe() {
    if (!this.send({ type: "ping", t: Date.now() })) return;
    if (this.pongTimer) return;
    const ws = this.ws;
    this.pongTimer = setTimeout(() => {
      this.pongTimer = null;
      if (this.ws === ws) this.drop(0);
    }, this.pongTimeoutMs);
  }

  alive() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }
}
