// The AI companion on the chat page (loaded only when the peer is the AI).
// chat.js owns the socket; it re-dispatches `companion_*` frames as
// `mh-companion` events and every stored message as `mh-message`.
//
// * companion_start / companion_delta: a provisional bubble grows as the reply
//   is generated (sentence by sentence, each checked on the server first);
// * companion_retract: what was shown is withdrawn (the server falls back to
//   the built-in engine and streams again);
// * the final reply arrives as an ordinary `message` (persisted, so reloads and
//   resumes show it) and replaces the provisional bubble;
// * companion_card: a tool offer, the crisis card with "现在请真人督导来", the
//   daily soft-limit note.
import { ApiError, api, readBoot } from "./common.js";

const boot = readBoot("chat-boot");
const convId = boot.conversation_id;
const items = document.getElementById("message-items");
const scroller = document.getElementById("messages");
const cards = document.getElementById("ai-cards");
const form = document.getElementById("composer-form");
const composer = document.getElementById("composer");
const session = document.getElementById("ai-session");
const streams = new Map(); // client_id -> {li, bubble, text}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

function streamFor(clientId) {
  let s = streams.get(clientId);
  if (s) return s;
  if (items.querySelector(`li[data-client-id="${CSS.escape(clientId)}"]:not(.streaming)`)) return null; // already stored
  const li = document.createElement("li");
  li.className = "msg theirs from-ai streaming";
  li.dataset.clientId = clientId;
  li.setAttribute("data-testid", "ai-streaming");
  const badge = document.createElement("span");
  badge.className = "msg-from ai-badge";
  badge.textContent = "AI";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  li.append(badge, bubble);
  items.appendChild(li);
  s = { li, bubble, text: "" };
  streams.set(clientId, s);
  document.getElementById("chat-empty").hidden = true;
  return s;
}

function endStream(clientId) {
  const s = streams.get(clientId);
  if (!s) return;
  s.li.remove();
  streams.delete(clientId);
}

function sendText(text) {
  composer.value = text;
  composer.dispatchEvent(new Event("input"));
  form.requestSubmit();
}

function button(label, onClick, testid) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "btn btn-small btn-ghost";
  b.textContent = label;
  if (testid) b.setAttribute("data-testid", testid);
  b.addEventListener("click", onClick);
  return b;
}

function showCard(kind, title, text, actions = []) {
  const old = cards.querySelector(`[data-kind="${kind}"]`);
  if (old) old.remove();
  const box = document.createElement("div");
  box.className = `ai-card ai-card-${kind}`;
  box.dataset.kind = kind;
  box.setAttribute("data-testid", `ai-card-${kind}`);
  const h = document.createElement("strong");
  h.textContent = title;
  const p = document.createElement("p");
  p.textContent = text;
  const row = document.createElement("div");
  row.className = "ai-card-actions";
  for (const a of actions) row.append(a);
  const close = button("收起", () => box.remove());
  close.className = "btn btn-small btn-quiet";
  row.append(close);
  box.append(h, p, row);
  cards.prepend(box);
}

async function askHuman(btn) {
  btn.disabled = true;
  try {
    const r = await api("/api/companion/human", { method: "POST", body: { conversation_id: convId } });
    showCard("human", "已通知真人督导", r.text);
  } catch (e) {
    btn.disabled = false;
    showCard("error", "没能通知到督导", e instanceof ApiError ? e.message : "请稍后再试，或直接拨打热线。");
  }
}

function crisisCard(human) {
  showCard("crisis", human.title, human.text, [button("现在请真人督导来", (ev) => askHuman(ev.target), "ask-human")]);
}

function onFrame(f) {
  if (f.conversation_id && f.conversation_id !== convId) return;
  const stick = nearBottom();
  if (f.type === "companion_start") {
    const offer = cards.querySelector('[data-kind="offer"]'); // an old offer is stale once the AI speaks again
    if (offer) offer.remove();
    streamFor(f.client_id);
  } else if (f.type === "companion_delta") {
    const s = streamFor(f.client_id);
    if (!s) return;
    s.text += f.text;
    s.bubble.textContent = s.text;
  } else if (f.type === "companion_retract") {
    const s = streams.get(f.client_id);
    if (s) {
      s.text = "";
      s.bubble.textContent = "";
    }
  } else if (f.type === "companion_end") {
    // The stored message normally arrived already; if not, it follows through resume.
    if (items.querySelector(`li[data-client-id="${CSS.escape(f.client_id)}"]:not(.streaming)`)) endStream(f.client_id);
  } else if (f.type === "companion_card") {
    if (f.kind === "crisis") crisisCard(f.human);
    else if (f.kind === "offer") {
      const acts = (f.tools || []).map((t) => button(`试试「${t.name}」`, () => sendText(`我想试试「${t.name}」`), "ai-offer"));
      showCard("offer", "要不要试个小工具？", "点一下就开始，随时可以说“不做了”。", acts);
    } else if (f.kind === "limit") {
      const a = document.createElement("a");
      a.className = "btn btn-small btn-primary";
      a.href = "/companion/handoff";
      a.textContent = "找真人倾听师";
      showCard("limit", "今天聊了很多啦", "AI 陪伴有每天的建议上限；真人倾听师随时都在。", [a]);
    }
  }
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

window.addEventListener("mh-companion", (ev) => onFrame(ev.detail));
window.addEventListener("mh-message", (ev) => {
  const f = ev.detail;
  if (f.client_id && streams.has(f.client_id)) endStream(f.client_id);
});

for (const b of document.querySelectorAll(".ai-tool")) {
  b.addEventListener("click", () => sendText(`我想试试「${b.dataset.tool}」`));
}

async function loadSettings() {
  try {
    const s = await api("/api/companion/settings");
    if (session) session.value = String(s.session_minutes || 0);
    if (s.crisis && s.human) crisisCard(s.human);
    if (s.hotline) window.dispatchEvent(new CustomEvent("mh-safety", { detail: { type: "hotline", ...s.hotline } }));
  } catch {
    /* the page still works without settings */
  }
}

if (session) {
  session.addEventListener("change", async () => {
    const minutes = Number(session.value) || 0;
    try {
      await api("/api/companion/settings", { method: "PUT", body: { session_minutes: minutes, set_session: true } });
      showCard("session", "已设置", minutes ? `这次聊 ${minutes} 分钟，到时 AI 会温和地提醒你。` : "不设时长。");
    } catch (e) {
      showCard("error", "没能保存", e instanceof ApiError ? e.message : "请稍后再试。");
    }
  });
}

loadSettings();
