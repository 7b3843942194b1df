// Conversation list (listener console and "我的会话"): live over /ws/inbox.
// Any `activity` or `conversation` event refetches the list (debounced).

import { ApiError, LiveSocket, api, presenceEl, readBoot, relativeLabel, wsUrl } from "./common.js";
import { away, mountSettings, notify, resume, watch } from "./notify.js";

const boot = readBoot("inbox-boot");
const role = boot.me.role;
const list = document.getElementById("conv-list");
const empty = document.getElementById("conv-empty");
const banner = document.getElementById("inbox-banner");
const toggle = document.getElementById("accepting-toggle");
const errorBox = document.getElementById("console-error");

/** What this person typed in a conversation and did not send (chat.js keeps it), as one line. */
function draftOf(convId) {
  try {
    const text = localStorage.getItem(`mh:draft:${boot.me.user_id}:${convId}`) || "";
    return text.trim().replace(/\s+/g, " ").slice(0, 80);
  } catch {
    return "";
  }
}

function item(c) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.className = "conv" + (c.unread > 0 ? " has-unread" : "");
  a.href = `/chat/${encodeURIComponent(c.id)}`;
  a.setAttribute("data-testid", "conversation-item");
  a.dataset.conversationId = c.id;

  const name = document.createElement("span");
  name.className = "conv-name";
  const n = document.createElement("span");
  n.className = "name";
  n.textContent = c.peer.display_name;
  if (c.peer.role === "companion") {
    // The AI companion: always there, always labelled; it has no presence.
    const ai = document.createElement("span");
    ai.className = "ai-badge";
    ai.setAttribute("data-testid", "conversation-ai-badge");
    ai.textContent = "AI";
    name.append(n, ai);
  } else {
    name.append(n, presenceEl(c.peer.presence || "offline"));
  }

  const time = document.createElement("time");
  time.className = "conv-time";
  time.dateTime = c.last_activity_at;
  time.textContent = relativeLabel(c.last_activity_at);

  const preview = document.createElement("span");
  preview.className = "conv-preview";
  const draft = draftOf(c.id);
  if (draft) {
    const mark = document.createElement("span");
    mark.className = "draft-mark";
    mark.setAttribute("data-testid", "draft-mark");
    mark.textContent = "[草稿]";
    preview.append(mark, " ", draft);
  } else {
    preview.textContent = c.preview || (c.last_seq ? "" : "新会话，还没有消息");
  }

  a.append(name, time, preview);
  if (c.unread > 0) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.setAttribute("data-testid", "unread-badge");
    badge.setAttribute("aria-label", `${c.unread} 条未读`);
    badge.textContent = c.unread > 99 ? "99+" : String(c.unread);
    a.append(badge);
  }
  li.append(a);
  return li;
}

let unreadBefore = null; // conversation id -> unread, as last rendered

/** 新消息提醒: the conversations whose unread count grew since the last render. */
function alertGrown(convs) {
  const before = unreadBefore;
  unreadBefore = new Map(convs.map((c) => [c.id, c.unread]));
  if (!before) return; // the page's first list is not news
  const grown = convs.filter((c) => c.unread > (before.get(c.id) || 0));
  if (grown.length === 1) {
    const c = grown[0];
    const fresh = role === "listener" && c.unread === c.last_seq; // nothing in it yet but theirs
    notify({
      role,
      topic: c.id,
      body: fresh ? "有人找你倾诉，请尽快回复" : "你有一条新消息",
      named: fresh ? `${c.peer.display_name} 找你倾诉，请尽快回复` : `${c.peer.display_name} 发来新消息`,
      tag: `mh-conv-${c.id}`,
      url: `/chat/${c.id}`,
    });
  } else if (grown.length > 1 && grown.some((c) => away(c.id))) {
    notify({ role, topic: "inbox", body: `${grown.length} 个会话有新消息`, tag: "mh-inbox", url: location.pathname });
  }
}

let shown = [];

/** An order began: the listener has a client waiting; a seeker's booked time has come. */
function orderStarted(o) {
  const listener = role === "listener" && o.listener_id === boot.me.user_id;
  const booked = role === "seeker" && o.seeker_id === boot.me.user_id;
  if (!listener && !booked) return;
  notify({
    role,
    topic: o.conversation_id,
    body: listener ? `新订单开始了：${o.kind_label}，${o.response_window_s}秒内回复` : `你预约的${o.kind_label}倾诉开始了`,
    named: booked ? `你预约的${o.kind_label}倾诉开始了，${o.listener_name}在等你` : undefined,
    tag: `mh-conv-${o.conversation_id}`,
    url: `/chat/${o.conversation_id}`,
  });
}

function render(convs) {
  shown = convs;
  list.replaceChildren(...convs.map(item));
  empty.hidden = convs.length > 0;
  const unread = convs.reduce((n, c) => n + (c.unread > 0 ? 1 : 0), 0);
  document.title = (unread ? `(${unread}) ` : "") + document.title.replace(/^\(\d+\) /, "");
  alertGrown(convs);
}

let refreshTimer = null;
let refreshing = false;
let again = false;

async function refresh() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    render(await api("/api/conversations"));
  } catch {
    /* keep the last list; the next event or timer retries */
  } finally {
    refreshing = false;
    if (again) {
      again = false;
      scheduleRefresh();
    }
  }
}

function scheduleRefresh(delay = 250) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, delay);
}

let opened = false;
const sock = new LiveSocket({
  url: () => wsUrl("/ws/inbox"),
  onFrame(f) {
    if (f.type === "activity" || f.type === "conversation" || f.type === "presence") scheduleRefresh();
    if (["risk", "case", "whisper", "debrief"].includes(f.type)) {
      window.dispatchEvent(new CustomEvent("mh-safety", { detail: f })); // console_safety.js
    }
    if (f.type === "order") {
      window.dispatchEvent(new CustomEvent("mh-order", { detail: f.order }));
      if (f.started) orderStarted(f.order);
      scheduleRefresh(); // a purchase may have opened a new conversation
    }
  },
  onOpen() {
    // Events may have been missed while disconnected, or between this page's
    // render and its first connection: the list is read again either way.
    scheduleRefresh(opened ? 0 : 250);
    opened = true;
    if (document.visibilityState !== "visible") sock.send({ type: "presence", status: "away" });
  },
  onState(state) {
    banner.hidden = !(state === "reconnecting" || state === "offline");
  },
  onFatal(code) {
    if (code === 4401) location.href = "/login?next=" + encodeURIComponent(location.pathname);
  },
});

document.addEventListener("visibilitychange", () => {
  const visible = document.visibilityState === "visible";
  sock.send({ type: "presence", status: visible ? "online" : "away" });
  if (visible) scheduleRefresh(0);
});
// Presence is pushed on the inbox socket; a slow refresh also keeps relative times fresh.
setInterval(() => {
  if (document.visibilityState === "visible") scheduleRefresh(0);
}, 30000);

if (toggle) {
  toggle.addEventListener("click", async () => {
    const next = toggle.getAttribute("aria-pressed") !== "true";
    toggle.disabled = true;
    try {
      await api("/api/listener/availability", { method: "PUT", body: { accepting: next } });
      toggle.setAttribute("aria-pressed", next ? "true" : "false");
      toggle.classList.toggle("is-on", next);
      toggle.querySelector(".accept-label").textContent = next ? "接单中" : "休息中";
      if (errorBox) errorBox.hidden = true;
    } catch (e) {
      if (errorBox) {
        errorBox.textContent = e instanceof ApiError ? e.message : "切换失败，请重试";
        errorBox.hidden = false;
      }
    } finally {
      toggle.disabled = false;
    }
  });
}

// A draft typed in a chat in another tab: show it (or its removal) without asking the server.
window.addEventListener("storage", (ev) => {
  if (ev.key && ev.key.startsWith(`mh:draft:${boot.me.user_id}:`)) list.replaceChildren(...shown.map(item));
});

render(boot.conversations);
watch("inbox");
mountSettings(role);
resume(role);
sock.start();
