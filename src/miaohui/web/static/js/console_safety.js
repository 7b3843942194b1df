// The listener console's safety section: per conversation, the latest risk
// hint (emotions, topics, approach), the open case (guardian mode, whispers)
// and debrief offers.  Events arrive on the inbox socket (inbox.js
// re-dispatches them as `mh-safety`).
import { ApiError, api, readBoot } from "./common.js";
import { card, chips, el, tierBadge } from "./safety_ui.js";

const section = document.getElementById("console-safety");
const items = document.getElementById("safety-items");
const boot = readBoot("safety-boot") || { cases: [] };
const byConv = new Map(); // conversation_id -> { case, risk, whisper, debrief }

function entry(convId) {
  if (!byConv.has(convId)) byConv.set(convId, {});
  return byConv.get(convId);
}

function debriefButtons(caseId) {
  const status = el("p", { class: "muted small", role: "status" });
  const go = async (accept, btns) => {
    btns.forEach((b) => (b.disabled = true));
    try {
      await api(`/api/supervision/cases/${encodeURIComponent(caseId)}/debrief`, { method: "POST", body: { accept } });
      status.textContent = accept ? "已告诉督导，督导会联系你约时间。" : "好的。需要的时候随时可以找督导。";
    } catch (e) {
      status.textContent = e instanceof ApiError ? e.message : "提交失败，请重试";
      btns.forEach((b) => (b.disabled = false));
    }
  };
  const yes = el("button", { type: "button", class: "btn btn-small btn-primary", text: "好的，约督导复盘" });
  const no = el("button", { type: "button", class: "btn btn-small btn-quiet", text: "暂时不用" });
  yes.addEventListener("click", () => go(true, [yes, no]));
  no.addEventListener("click", () => go(false, [yes, no]));
  return [el("div", { class: "actions" }, yes, no), status];
}

function render() {
  const cards = [];
  for (const [convId, e] of byConv) {
    const c = e.case;
    const link = el("a", { href: `/chat/${encodeURIComponent(convId)}`, text: "打开对话" });
    if (c && c.status !== "resolved") {
      const who = c.seeker ? c.seeker.display_name : "";
      cards.push(card({
        cls: c.rank >= 2 ? "guidance" : "boundary-note",
        testid: "console-case",
        title: `${who} · ${c.status_label}`,
        badge: tierBadge(c.rank, c.tier_label),
        body: [
          c.guardian ? el("p", { text: "守护模式：对话不会因时间到而中断，超出的时间由平台支付。督导已收到通知。" }) : null,
          chips(Object.values(c.flags || {}).flatMap((f) => f.labels || [])),
          e.whisper ? el("p", { testid: "console-whisper", text: `督导：${e.whisper.body}` }) : null,
          link,
        ],
      }));
    } else if (e.risk && !e.risk.guidance) {
      const r = e.risk;
      cards.push(card({
        cls: "hint-card",
        testid: "console-hint",
        title: (r.hint && r.hint.title) || "情绪提示",
        badge: tierBadge(r.tier === "distress" ? 1 : 0, r.tier_label),
        closable: true,
        body: [
          chips((r.emotions || []).map((x) => x.label)),
          chips(r.topics),
          el("p", { text: r.hint ? r.hint.approach : "" }),
          link,
        ],
      }));
    }
    if (c && c.debrief === "offered") {
      cards.push(card({
        cls: "debrief-card",
        testid: "debrief-offer",
        title: (boot.debrief && boot.debrief.title) || "要不要和督导复盘一下？",
        body: [el("p", { text: (boot.debrief && boot.debrief.text) || "" }), ...debriefButtons(c.id)],
      }));
    }
  }
  items.replaceChildren(...cards);
  section.hidden = cards.length === 0;
}

for (const c of boot.cases || []) entry(c.conversation_id).case = c;

window.addEventListener("mh-safety", (ev) => {
  const f = ev.detail;
  if (!f || !f.type) return;
  if (f.type === "case" && f.case) entry(f.case.conversation_id).case = f.case;
  else if (f.type === "risk") entry(f.conversation_id).risk = f;
  else if (f.type === "whisper") entry(f.conversation_id).whisper = f;
  else if (f.type === "debrief") {
    const e = entry(f.conversation_id);
    e.case = { ...(e.case || { id: f.case_id, conversation_id: f.conversation_id, status: "resolved" }), debrief: "offered" };
  }
  render();
});

render();
