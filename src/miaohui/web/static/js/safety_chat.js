// Safety on the chat page.  chat.js owns the socket and re-dispatches safety
// frames as `mh-safety` window events (and `mh-safety-resync` after a
// reconnect).  What each side may see is decided by the server: the seeker's
// socket only ever receives the hotline card and off-platform warnings; the
// listener's gets risk guidance, boundary notes, whispers and case updates.
import { ApiError, api, readBoot } from "./common.js";
import { card, el, guidancePanel, hintCard, hotlineCard, noteCard, rankOf, whisperItem } from "./safety_ui.js";

const boot = readBoot("chat-boot");
const role = boot.me.role;
const convId = boot.conversation_id;
const area = document.getElementById("safety-area");
const worryBtn = document.getElementById("worry-button");

// Most urgent first: the seeker's card; a supervisor's words to the listener above the standing guidance.
const ORDER = ["hotline", "whispers", "takeover", "case", "guidance", "hint", "attachment", "offplatform", "debrief"];
const slots = {};
let guidanceRank = 0;

function put(name, node) {
  if (slots[name]) slots[name].remove();
  slots[name] = node || null;
  if (!node) return;
  const before = ORDER.slice(0, ORDER.indexOf(name)).map((n) => slots[n]).filter(Boolean).pop();
  if (before) before.after(node);
  else area.prepend(node);
}

function showGuidance(g) {
  const r = rankOf(g.tier);
  if (slots.guidance && r < guidanceRank) return; // never step down while the case is open
  guidanceRank = r;
  put("guidance", guidancePanel(g));
}

function whispersCard() {
  if (!slots.whispers) {
    put("whispers", card({ cls: "whisper", testid: "whispers", title: "督导悄悄话（只有你能看到）", closable: true, body: [] }));
  }
  return slots.whispers.querySelector(".body");
}

function addWhisper(w) {
  const body = whispersCard();
  if (w.id != null && body.querySelector(`[data-whisper-id="${CSS.escape(String(w.id))}"]`)) return;
  body.append(whisperItem(w));
  slots.whispers.classList.remove("collapsed");
  area.scrollTop = 0; // it is on top: make sure it is seen
}

function showDebrief(d) {
  const yes = el("button", { type: "button", class: "btn btn-small btn-primary", text: "好的，约督导复盘", testid: "debrief-accept" });
  const no = el("button", { type: "button", class: "btn btn-small btn-quiet", text: "暂时不用" });
  const status = el("p", { class: "muted small", role: "status" });
  const answer = async (accept) => {
    yes.disabled = no.disabled = true;
    try {
      await api(`/api/supervision/cases/${encodeURIComponent(d.case_id)}/debrief`, { method: "POST", body: { accept } });
      status.textContent = accept ? "已告诉督导，督导会联系你约时间。" : "好的。需要的时候随时可以找督导。";
    } catch (e) {
      status.textContent = e instanceof ApiError ? e.message : "提交失败，请重试";
      yes.disabled = no.disabled = false;
    }
  };
  yes.addEventListener("click", () => answer(true));
  no.addEventListener("click", () => answer(false));
  put("debrief", card({ cls: "debrief-card", testid: "debrief-offer", title: d.title, body: [el("p", { text: d.text }), el("div", { class: "actions" }, yes, no), status] }));
}

/** The 我担心对方 button says whether supervisors are already on this conversation
 * (after a reload too); pressing it again still reaches them. */
function markWorry(open) {
  if (!worryBtn) return;
  worryBtn.classList.toggle("sent", open);
  worryBtn.textContent = open ? "督导跟进中" : "我担心对方";
}

function onCase(c) {
  if (!c || c.conversation_id !== convId) return;
  if (c.status === "resolved") {
    put("guidance", null);
    put("takeover", null);
    guidanceRank = 0;
    if (role === "supervisor") put("case", null);
    markWorry(false);
    return;
  }
  if (role === "listener") markWorry(true);
  if (role === "listener" && c.taken_over_by) {
    put("takeover", card({ cls: "whisper", testid: "takeover-note", title: "督导已接管这段对话",
      body: [el("p", { text: `${c.taken_over_by.display_name} 正在和对方交流。请留在对话里，先不要回复，有需要督导会用悄悄话告诉你。` })] }));
  }
  if (role === "supervisor") {
    put("case", card({ cls: "whisper", testid: "case-note", title: `个案：${c.tier_label} · ${c.status_label}`,
      body: [el("a", { href: `/supervision/cases/${encodeURIComponent(c.id)}`, text: "查看个案与处理记录" })] }));
  }
}

/** Replace the bubble of a stored message whose contact details the server masked. */
function maskBubble(seq, body, tries = 0) {
  const bubble = document.querySelector(`[data-testid="message"][data-seq="${seq}"] .bubble`);
  if (bubble) bubble.textContent = body;
  else if (tries < 10) setTimeout(() => maskBubble(seq, body, tries + 1), 200);
}

function onFrame(f) {
  if (f.conversation_id && f.conversation_id !== convId) return;
  switch (f.type) {
    case "hotline":
      put("hotline", hotlineCard(f));
      break;
    case "risk":
      if (f.guidance) showGuidance(f.guidance);
      else if (f.hint) put("hint", hintCard(f));
      break;
    case "boundary":
      if (f.kind === "off_platform") {
        put("offplatform", noteCard(f, "boundary-warning"));
        if (f.body && f.seq) maskBubble(f.seq, f.body);
      } else {
        put("attachment", noteCard(f, "boundary-note"));
      }
      break;
    case "whisper":
      addWhisper(f);
      break;
    case "case":
      onCase(f.case);
      break;
    case "debrief":
      showDebrief(f);
      break;
    default:
      break;
  }
}

function apply(state) {
  if (!state) return;
  if (state.hotline) put("hotline", hotlineCard(state.hotline));
  if (state.guidance) showGuidance(state.guidance);
  for (const w of state.whispers || []) addWhisper(w);
  if (state.case) onCase(state.case);
  if (state.debrief) showDebrief(state.debrief);
}

window.addEventListener("mh-safety", (ev) => onFrame(ev.detail));
window.addEventListener("mh-safety-resync", async () => {
  try {
    apply(await api(`/api/supervision/conversations/${encodeURIComponent(convId)}/state`));
  } catch {
    /* the next reconnect tries again */
  }
});

if (worryBtn) {
  worryBtn.addEventListener("click", async () => {
    worryBtn.disabled = true;
    try {
      await api("/api/supervision/worry", { method: "POST", body: { conversation_id: convId } });
      markWorry(true);
      put("case", card({ cls: "whisper", testid: "worry-sent", title: "督导已收到你的求助",
        body: [el("p", { text: "督导马上会进入对话。先留在这里，继续陪着对方。" })] }));
      area.scrollTop = 0;
      setTimeout(() => (worryBtn.disabled = false), 30000);
    } catch (e) {
      worryBtn.disabled = false;
      put("case", card({ cls: "boundary-note", title: "求助没有发出", body: [el("p", { text: e instanceof ApiError ? e.message : "请重试" })] }));
    }
  });
}

apply(boot.safety);
