// The chat client (docs/protocol.md v1).
//
// * Messages are kept by `seq` (dedupe) and own messages also by `client_id`.
// * Sends go to an outbox persisted in localStorage per conversation, so a
//   reload, a closed lid or a dropped network never loses a message; after
//   every (re)connect the outbox is resent with the original client ids — the
//   server answers a repeat with the original seq (`duplicate: true`).
// * We reconnect with `after_seq` = the highest seq held contiguously, and on
//   a gap ask the server to `sync`.

import { notify, resume, watch } from "./notify.js";
import { OrderBar } from "./orderbar.js";
import {
  ApiError,
  LiveSocket,
  api,
  dateTimeLabel,
  dayKey,
  newClientId,
  readBoot,
  setPresence,
  timeLabel,
  wsUrl,
} from "./common.js";

const boot = readBoot("chat-boot");
const orderBar = new OrderBar(boot);
const convId = boot.conversation_id;
const meId = boot.me.user_id;
const peerId = boot.peer.user_id;
const MAX_CHARS = (boot.limits && boot.limits.max_body_chars) || 4000;
const SAFETY_FRAMES = new Set(["risk", "hotline", "boundary", "whisper", "case", "debrief"]);
const ROLE_LABELS = { seeker: "倾诉者", listener: "倾听师", supervisor: "平台督导", companion: "AI" };
const AI_CHAT = boot.peer.role === "companion"; // the AI companion: companion.js streams replies in
const TYPING_IDLE_MS = 3000;
const TYPING_REFRESH_MS = 2500;
const PEER_TYPING_TIMEOUT_MS = 5000;

const $ = (id) => document.getElementById(id);
const els = {
  scroller: $("messages"),
  items: $("message-items"),
  empty: $("chat-empty"),
  older: $("load-older"),
  sentinel: $("bottom-sentinel"),
  typing: $("typing-indicator"),
  presence: document.querySelector('[data-testid="presence"]'),
  banner: $("reconnect-banner"),
  error: $("chat-error"),
  form: $("composer-form"),
  composer: $("composer"),
  send: $("send-button"),
  counter: $("counter"),
  newBelow: $("new-below"),
};

// ------------------------------------------------------------------ state

const bySeq = new Map(); // seq -> record
const byClient = new Map(); // client_id -> own record
let contig = 0; // highest seq such that every seq from the first held one up to it is held
let maxSeq = 0;
let lowestSeq = null;
let hasMoreBefore = !!boot.has_more;
let peerDelivered = boot.receipts.peer.delivered_seq || 0;
let peerRead = boot.receipts.peer.read_seq || 0;
let deliveredSent = boot.receipts.me.delivered_seq || 0;
let readSent = boot.receipts.me.read_seq || 0;
let refused = !!boot.send_refusal; // may read, may not send (refuseSending)
const REFUSALS = new Set(["blocked", "listener_suspended"]);
let ready = false; // `synced` received on the current connection
let syncInFlight = false;
let atBottom = true;

// ----------------------------------------------------------------- outbox

const OUTBOX_KEY = `mh:outbox:${meId}:${convId}`;

function loadOutbox() {
  try {
    const v = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]");
    return Array.isArray(v) ? v.filter((x) => x && typeof x.client_id === "string" && typeof x.body === "string") : [];
  } catch {
    return [];
  }
}

let outbox = loadOutbox();

function saveOutbox() {
  try {
    if (outbox.length) localStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox));
    else localStorage.removeItem(OUTBOX_KEY);
  } catch {
    /* storage full or disabled: the in-memory outbox still resends on reconnect */
  }
}

function removeFromOutbox(clientId) {
  const before = outbox.length;
  outbox = outbox.filter((x) => x.client_id !== clientId);
  if (outbox.length !== before) saveOutbox();
}

// Another tab of the same person may add to the outbox: show and keep those too
// (a repeat send is harmless — the server deduplicates by client id).
window.addEventListener("storage", (ev) => {
  if (ev.key !== OUTBOX_KEY) return;
  for (const item of loadOutbox()) {
    if (byClient.has(item.client_id)) continue;
    addPending(item);
    outbox.push(item);
  }
});

// ------------------------------------------------------------------ draft

// 草稿: what is typed and not sent survives leaving the page (the list shows
// it as [草稿]), on this device only, until it is sent or emptied.  The key
// carries the person, like the outbox; signing out clears both (signout.js).
const DRAFT_KEY = `mh:draft:${meId}:${convId}`;
let draftTimer = null;

function saveDraft() {
  clearTimeout(draftTimer);
  try {
    const text = els.composer.value;
    if (text.trim()) localStorage.setItem(DRAFT_KEY, text.slice(0, MAX_CHARS * 2));
    else localStorage.removeItem(DRAFT_KEY);
  } catch {
    /* storage full or disabled: the draft lives as long as the page */
  }
}

// -------------------------------------------------------------- rendering

function statusOf(rec) {
  if (rec.failed) return ["failed", "发送失败"];
  if (rec.seq == null) return ["pending", "发送中"];
  if (peerRead >= rec.seq) return ["read", "已读"];
  if (peerDelivered >= rec.seq) return ["delivered", "已送达"];
  return ["sent", "已发送"];
}

function stampLabel(iso) {
  if (!iso) return "";
  return dayKey(iso) === dayKey(new Date()) ? timeLabel(iso) : dateTimeLabel(iso);
}

function buildElement(rec) {
  const li = document.createElement("li");
  li.className = "msg" + (rec.system ? " system" : rec.mine ? " mine" : " theirs");
  if (rec.role === "supervisor") li.classList.add("from-supervisor");
  li.setAttribute("data-testid", "message");
  if (rec.role === "companion") {
    // Every AI message says so, whatever else is on the screen.
    li.classList.add("from-ai");
    const ai = document.createElement("span");
    ai.className = "msg-from ai-badge";
    ai.setAttribute("data-testid", "ai-badge");
    ai.textContent = "AI";
    li.append(ai);
  }
  // A third voice (a supervisor who joined), or a supervisor reading both sides: say who speaks.
  if (!rec.mine && !rec.system && rec.role !== "companion" && (rec.role === "supervisor" || boot.me.role === "supervisor") && ROLE_LABELS[rec.role]) {
    const from = document.createElement("span");
    from.className = "msg-from";
    from.textContent = ROLE_LABELS[rec.role];
    li.append(from);
  }
  li.dataset.mine = rec.mine ? "true" : "false";
  if (rec.client_id) li.dataset.clientId = rec.client_id;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = rec.body;
  const meta = document.createElement("div");
  meta.className = "msg-meta";
  const time = document.createElement("time");
  time.textContent = stampLabel(rec.created_at);
  if (rec.created_at) time.dateTime = rec.created_at;
  meta.append(time);
  if (rec.mine) {
    const st = document.createElement("span");
    st.className = "msg-status";
    st.setAttribute("data-testid", "message-status");
    meta.append(st);
    rec.statusEl = st;
  }
  li.append(bubble, meta);
  rec.el = li;
  rec.timeEl = time;
  syncElement(rec);
  return li;
}

function syncElement(rec) {
  const li = rec.el;
  if (rec.seq != null) li.dataset.seq = String(rec.seq);
  else delete li.dataset.seq;
  li.classList.toggle("pending", rec.seq == null && !rec.failed);
  li.classList.toggle("failed", !!rec.failed);
  if (rec.statusEl) {
    const [state, label] = statusOf(rec);
    if (rec.statusEl.dataset.state !== state) {
      rec.statusEl.dataset.state = state;
      rec.statusEl.textContent = label;
      if (state === "failed" && rec.error) rec.statusEl.title = rec.error;
    }
  }
}

/** Put a record's element in seq order; pending ones (no seq yet) stay last. */
function place(rec) {
  const el = rec.el;
  if (rec.seq == null) {
    els.items.appendChild(el);
    return;
  }
  let node = els.items.lastElementChild;
  while (node) {
    if (node !== el && node.dataset.seq && Number(node.dataset.seq) < rec.seq) break;
    node = node.previousElementSibling;
  }
  if (node) {
    if (node.nextElementSibling !== el) node.after(el);
  } else if (els.items.firstElementChild !== el) {
    els.items.prepend(el);
  }
}

function updateEmpty() {
  els.empty.hidden = els.items.childElementCount > 0;
}

function refreshStatuses() {
  for (const rec of byClient.values()) syncElement(rec);
}

// ------------------------------------------------------------ the model

function noteSeq(seq) {
  if (lowestSeq === null || seq < lowestSeq) lowestSeq = seq;
  if (seq > maxSeq) maxSeq = seq;
  if (bySeq.size === 1 && contig === 0 && seq > 1) contig = seq - 1; // first message held: start from it
  while (bySeq.has(contig + 1)) contig += 1;
}

/** Take a stored message (boot, backlog, live, history).  Returns true if new. */
function ingest(m) {
  if (typeof m.seq !== "number" || bySeq.has(m.seq)) return false;
  const mine = m.sender_id === meId;
  let rec = mine && m.client_id ? byClient.get(m.client_id) : null;
  if (rec) {
    if (rec.seq != null) return false;
    rec.seq = m.seq;
    rec.created_at = m.created_at;
    rec.failed = false;
    if (rec.timeEl) rec.timeEl.textContent = stampLabel(m.created_at);
    removeFromOutbox(m.client_id);
  } else {
    rec = {
      seq: m.seq, client_id: m.client_id, sender_id: m.sender_id, body: m.body, created_at: m.created_at, mine,
      system: m.sender_role === "system", role: m.sender_role,
    };
    buildElement(rec);
    if (mine && m.client_id) byClient.set(m.client_id, rec);
  }
  bySeq.set(m.seq, rec);
  noteSeq(m.seq);
  syncElement(rec);
  place(rec);
  return true;
}

function addPending(item) {
  const rec = {
    seq: null,
    client_id: item.client_id,
    sender_id: meId,
    body: item.body,
    created_at: item.created_at,
    mine: true,
  };
  buildElement(rec);
  byClient.set(item.client_id, rec);
  place(rec);
  updateEmpty();
  return rec;
}

function onAck(f) {
  const rec = byClient.get(f.client_id);
  removeFromOutbox(f.client_id);
  if (!rec || rec.seq != null) return;
  rec.seq = f.seq;
  rec.created_at = f.created_at || rec.created_at;
  rec.failed = false;
  if (rec.timeEl) rec.timeEl.textContent = stampLabel(rec.created_at);
  if (!bySeq.has(f.seq)) {
    bySeq.set(f.seq, rec);
    noteSeq(f.seq);
  }
  syncElement(rec);
  place(rec);
  checkGap();
}

// ------------------------------------------------------------- scrolling

function nearBottom() {
  const s = els.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function scrollToBottom() {
  els.scroller.scrollTop = els.scroller.scrollHeight;
  els.newBelow.hidden = true;
}

if ("IntersectionObserver" in window) {
  new IntersectionObserver(
    (entries) => {
      for (const e of entries) atBottom = e.isIntersecting;
      if (atBottom) {
        els.newBelow.hidden = true;
        markRead();
      }
    },
    { root: els.scroller, threshold: 0 },
  ).observe(els.sentinel);
}
// The list's height as last seen by the ResizeObserver below: a scroll event
// that finds another height comes from a layout change (a card taking room),
// not from the reader, and must not decide whether they are at the bottom.
let seenHeight = els.scroller.clientHeight;
els.scroller.addEventListener(
  "scroll",
  () => {
    if (els.scroller.clientHeight !== seenHeight) return;
    atBottom = nearBottom();
    if (atBottom) {
      els.newBelow.hidden = true;
      markRead();
    }
  },
  { passive: true },
);
els.newBelow.addEventListener("click", () => {
  scrollToBottom();
  markRead();
});
// The list loses height when a safety card, the order bar or the on-screen
// keyboard takes room (its scrollTop stays, so the newest lines would slip
// out of sight): a reader who was at the newest message stays there.
// ResizeObserver runs before the IntersectionObserver reports the sentinel
// gone, and the scroll handler above ignores the layout's own scroll events,
// so atBottom still says where the reader was.
if ("ResizeObserver" in window) {
  new ResizeObserver(() => {
    seenHeight = els.scroller.clientHeight;
    if (atBottom) scrollToBottom();
  }).observe(els.scroller);
}

// ------------------------------------------------------------ receipts

let deliveredTimer = null;
function scheduleDelivered() {
  clearTimeout(deliveredTimer);
  deliveredTimer = setTimeout(() => {
    if (contig > deliveredSent && ready && sock.send({ type: "delivered", seq: contig })) deliveredSent = contig;
  }, 400);
}

let readTimer = null;
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (document.visibilityState !== "visible" || !(atBottom || nearBottom())) return;
    if (contig > readSent && ready && sock.send({ type: "read", seq: contig })) {
      readSent = contig;
      if (readSent > deliveredSent) deliveredSent = readSent;
    }
  }, 250);
}

function onReceipt(f) {
  if (f.user_id !== peerId) {
    if (f.user_id === meId) {
      deliveredSent = Math.max(deliveredSent, f.delivered_seq || 0);
      readSent = Math.max(readSent, f.read_seq || 0);
    }
    return;
  }
  const d = f.delivered_seq || 0;
  const r = f.read_seq || 0;
  if (d > peerDelivered || r > peerRead) {
    peerDelivered = Math.max(peerDelivered, d, r);
    peerRead = Math.max(peerRead, r);
    refreshStatuses();
  }
}

// --------------------------------------------------------------- typing

let peerTypingTimer = null;
function showPeerTyping(on) {
  clearTimeout(peerTypingTimer);
  els.typing.hidden = !on;
  if (on) peerTypingTimer = setTimeout(() => (els.typing.hidden = true), PEER_TYPING_TIMEOUT_MS);
}

let typingOn = false;
let typingStartedAt = 0;
let typingIdleTimer = null;

function onComposing() {
  const text = els.composer.value;
  if (!text.trim()) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (!typingOn || now - typingStartedAt > TYPING_REFRESH_MS) {
    if (sock.send({ type: "typing", state: "start" })) {
      typingOn = true;
      typingStartedAt = now;
    }
  }
  clearTimeout(typingIdleTimer);
  typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typingIdleTimer);
  if (typingOn) {
    typingOn = false;
    sock.send({ type: "typing", state: "stop" });
  }
}

// ---------------------------------------------------------------- errors

let errorTimer = null;
function showError(message) {
  clearTimeout(errorTimer);
  els.error.textContent = message;
  els.error.hidden = false;
  errorTimer = setTimeout(() => (els.error.hidden = true), 8000);
}

const RETRYABLE = new Set(["store_failed"]);

// Sent faster than the server's per-person limit ("too_fast"): nothing was
// stored.  Hold every send until the server says, then resend the outbox in
// order, so a held message is never overtaken by a later one.
let holdUntil = 0;
let holdTimer = null;
function holdSending(ms) {
  holdUntil = Math.max(holdUntil, Date.now() + Math.max(ms, 200));
  clearTimeout(holdTimer);
  holdTimer = setTimeout(() => {
    holdUntil = 0;
    flushOutbox();
  }, holdUntil - Date.now());
}

// Reading stays open, sending does not: a listener suspended, a seeker the
// listener blocked (the server refuses every send with the reason, REST and
// socket alike, and tells a socket already open when it happens).
function refuseSending(message) {
  refused = true;
  els.composer.disabled = true;
  els.send.disabled = true;
  els.composer.placeholder = "这里暂时不能发消息";
  const note = $("send-refusal");
  note.textContent = message;
  note.hidden = false;
}

function onError(f) {
  if (REFUSALS.has(f.code)) {
    refuseSending(f.message);
    const rec = f.client_id && byClient.get(f.client_id);
    if (rec && rec.seq == null) {
      rec.failed = true;
      rec.error = "未发送";
      removeFromOutbox(f.client_id);
      syncElement(rec);
    }
    return;
  }
  if (f.code === "too_fast") {
    holdSending(f.retry_after_ms || 1000);
  } else if (f.client_id) {
    const rec = byClient.get(f.client_id);
    if (RETRYABLE.has(f.code)) {
      // Not stored: keep it in the outbox and retry with the same client id.
      setTimeout(() => {
        const item = outbox.find((x) => x.client_id === f.client_id);
        if (item) transmit(item);
      }, 2000);
    } else if (rec && rec.seq == null) {
      // Rejected for good (too long, empty…): never resend, show why.
      rec.failed = true;
      rec.error = f.message;
      removeFromOutbox(f.client_id);
      syncElement(rec);
    }
  }
  if (f.code === "bad_seq" || f.code === "unknown_type") return; // our own protocol slip; nothing for the person to do
  if (f.message) showError(f.message);
}

// --------------------------------------------------------------- sending

function transmit(item) {
  if (!ready) return false; // flushed on `synced`
  if (holdUntil) return false; // flushed when the hold ends (holdSending)
  return sock.send({ type: "send", client_id: item.client_id, body: item.body });
}

function flushOutbox() {
  for (const item of outbox) {
    const rec = byClient.get(item.client_id);
    if (rec && (rec.seq != null || rec.failed)) continue;
    transmit(item);
  }
}

const codepoints = (s) => [...s].length; // the server counts code points, not UTF-16 units

function updateComposer() {
  const text = els.composer.value;
  const n = codepoints(text);
  els.counter.textContent = `${n}/${MAX_CHARS}`;
  els.counter.classList.toggle("over", n > MAX_CHARS);
  els.send.disabled = refused || !text.trim() || n > MAX_CHARS;
  els.composer.style.height = "auto";
  els.composer.style.height = Math.min(els.composer.scrollHeight + 2, 160) + "px";
}

function sendFromComposer() {
  const body = els.composer.value;
  if (!body.trim()) return;
  if (codepoints(body) > MAX_CHARS) {
    showError(`消息过长（最多 ${MAX_CHARS} 字）`);
    return;
  }
  const item = { client_id: newClientId(), body, created_at: new Date().toISOString() };
  outbox.push(item);
  saveOutbox(); // durable on this device before anything else happens
  addPending(item);
  els.composer.value = "";
  saveDraft();
  window.dispatchEvent(new CustomEvent("mh-sent")); // mood.js: talking has begun
  updateComposer();
  stopTyping();
  showPeerTyping(false);
  scrollToBottom();
  transmit(item);
}

els.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  sendFromComposer();
  els.composer.focus();
});
els.composer.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
    ev.preventDefault();
    sendFromComposer();
  }
});
els.composer.addEventListener("input", () => {
  updateComposer();
  onComposing();
  clearTimeout(draftTimer);
  draftTimer = setTimeout(saveDraft, 300);
});
window.addEventListener("pagehide", saveDraft);
els.composer.addEventListener("blur", () => {
  if (!els.composer.value.trim()) stopTyping();
});

// ---------------------------------------------------------------- sync

let gapTimer = null;
function checkGap() {
  if (maxSeq <= contig || syncInFlight || !ready) return;
  clearTimeout(gapTimer);
  // A message can overtake another by a few ms across server processes: give
  // the missing one a moment, then ask for it.
  gapTimer = setTimeout(() => {
    if (maxSeq > contig && !syncInFlight && ready && sock.send({ type: "sync", after_seq: contig })) syncInFlight = true;
  }, 250);
}

function onSynced(f) {
  const wasSync = syncInFlight;
  syncInFlight = false;
  if (!ready) {
    ready = true;
    flushOutbox();
    if (document.visibilityState !== "visible") sock.send({ type: "presence", status: "away" });
  }
  if (f.more) {
    if (sock.send({ type: "sync", after_seq: contig })) syncInFlight = true;
  } else if (wasSync && maxSeq > contig) {
    // The server has nothing for the hole: step over it instead of asking forever.
    let next = contig + 1;
    while (!bySeq.has(next) && next < maxSeq) next += 1;
    contig = next - 1;
    while (bySeq.has(contig + 1)) contig += 1;
  } else {
    checkGap();
  }
  scheduleDelivered();
  markRead();
}

// ---------------------------------------------------------------- frames

function onMessage(f) {
  if (f.conversation_id && f.conversation_id !== convId) return;
  const stick = atBottom || nearBottom() || f.sender_id === meId;
  if (!ingest(f)) return;
  if (AI_CHAT) window.dispatchEvent(new CustomEvent("mh-message", { detail: f })); // ends a streamed reply
  updateEmpty();
  if (f.sender_id === peerId) showPeerTyping(false);
  if (f.sender_id !== meId) {
    notify({
      role: boot.me.role,
      topic: convId,
      body: "你有一条新消息",
      named: f.sender_id === peerId ? `${boot.peer.display_name} 发来新消息` : undefined,
      tag: `mh-conv-${convId}`,
      url: location.pathname,
    });
  }
  if (stick) scrollToBottom();
  else if (f.sender_id !== meId) els.newBelow.hidden = false;
  checkGap();
  scheduleDelivered();
  markRead();
}

function onHello(f) {
  ready = false;
  syncInFlight = false;
  if (f.peer) {
    setPresence(els.presence, f.peer.presence);
  }
  const r = f.receipts || {};
  if (r[peerId]) onReceipt({ user_id: peerId, ...r[peerId] });
  if (r[meId]) onReceipt({ user_id: meId, ...r[meId] });
  window.dispatchEvent(new CustomEvent("mh-safety-resync")); // safety events may have been missed
}

function onFrame(f) {
  switch (f.type) {
    case "hello":
      onHello(f);
      break;
    case "message":
      onMessage(f);
      break;
    case "synced":
      onSynced(f);
      break;
    case "ack":
      onAck(f);
      break;
    case "receipt":
      onReceipt(f);
      break;
    case "typing":
      if (f.user_id === peerId) showPeerTyping(f.state === "start");
      break;
    case "presence":
      if (f.user_id === peerId) setPresence(els.presence, f.status);
      break;
    case "error":
      onError(f);
      break;
    case "order":
      orderBar.update(f.order);
      break;
    default:
      if (SAFETY_FRAMES.has(f.type)) window.dispatchEvent(new CustomEvent("mh-safety", { detail: f })); // safety_chat.js
      else if (AI_CHAT && f.type.startsWith("companion_")) window.dispatchEvent(new CustomEvent("mh-companion", { detail: f }));
      break;
  }
}

let bannerTimer = null;
function onState(state) {
  clearTimeout(bannerTimer);
  if (state !== "open") {
    ready = false;
    syncInFlight = false;
    typingOn = false;
  }
  if (state === "open") {
    els.banner.hidden = true;
  } else if (state === "connecting") {
    bannerTimer = setTimeout(() => {
      if (sock.state === "connecting") els.banner.hidden = false;
    }, 3000);
  } else if (state === "closed") {
    els.banner.hidden = true;
  } else {
    els.banner.textContent = "连接已断开，正在重连…";
    els.banner.hidden = false;
  }
}

function onFatal(code) {
  if (code === 4401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    return;
  }
  els.composer.disabled = true;
  els.send.disabled = true;
  showError("无权访问该会话");
}

const sock = new LiveSocket({
  url: () => wsUrl(`/ws/chat/${encodeURIComponent(convId)}?after_seq=${contig}`),
  onFrame,
  onState,
  onFatal,
});

// ---------------------------------------------------------- older pages

async function loadOlder() {
  if (lowestSeq === null || lowestSeq <= 1) {
    hasMoreBefore = false;
    els.older.hidden = true;
    return;
  }
  els.older.disabled = true;
  els.older.textContent = "加载中…";
  try {
    const page = await api(`/api/conversations/${encodeURIComponent(convId)}/messages?before_seq=${lowestSeq}&limit=50`);
    const s = els.scroller;
    const fromBottom = s.scrollHeight - s.scrollTop;
    for (const m of page.messages) ingest(m);
    hasMoreBefore = page.has_more;
    s.scrollTop = s.scrollHeight - fromBottom; // keep the reader where they were
  } catch (e) {
    showError(e instanceof ApiError ? e.message : "加载失败，请重试");
  } finally {
    els.older.disabled = false;
    els.older.textContent = "加载更早的消息";
    els.older.hidden = !hasMoreBefore;
  }
}
els.older.addEventListener("click", loadOlder);

// ------------------------------------------------------------ presence

document.addEventListener("visibilitychange", () => {
  const visible = document.visibilityState === "visible";
  if (ready) sock.send({ type: "presence", status: visible ? "online" : "away" });
  if (visible) markRead();
  else stopTyping();
});
window.addEventListener("focus", markRead);

// ---------------------------------------------------------------- start

for (const m of boot.messages) ingest(m);
for (const item of outbox) {
  if (!byClient.has(item.client_id)) addPending(item);
  else if (byClient.get(item.client_id).seq != null) removeFromOutbox(item.client_id);
}
els.older.hidden = !hasMoreBefore;
updateEmpty();
if (!els.composer.value) els.composer.value = localStorage.getItem(DRAFT_KEY) || "";
updateComposer();
scrollToBottom();
setPresence(els.presence, boot.peer.presence);
watch(convId);
resume(boot.me.role);
sock.start();
