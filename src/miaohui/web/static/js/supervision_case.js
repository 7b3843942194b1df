// One case for a supervisor: the conversation (read through the audited
// transcript, then followed live with a `watch` on /ws/supervision — also
// audited), signals and flags, the event log, and the actions: take it,
// join, take over, whisper to the listener, resolve with notes.
import { ApiError, LiveSocket, api, readBoot, wsUrl } from "./common.js";
import { clock, el } from "./safety_ui.js";

const boot = readBoot("case-boot");
let c = boot.case;
const $ = (id) => document.getElementById(id);
const ROLE = { seeker: "倾诉者", listener: "倾听师", supervisor: "督导", system: "系统" };
const seen = new Set();

function showError(message) {
  const p = $("case-error");
  p.textContent = message;
  p.hidden = !message;
}

function renderSummary() {
  const tier = $("case-tier");
  tier.dataset.rank = String(c.rank);
  tier.textContent = `${c.tier_label} · ${c.level}级`;
  $("case-status").textContent = c.status_label;
  $("case-guardian").hidden = !c.guardian;
  const resolved = c.status === "resolved";
  $("case-actions").hidden = resolved;
  $("whisper-section").hidden = resolved;
  $("resolve-section").hidden = resolved;
  $("open-chat").hidden = !c.joined_by;
  const sig = (c.signals || []).map((s) => el("li", { text: s.label }));
  $("case-signals").replaceChildren(...sig);
  const flags = Object.entries(c.flags || {}).map(([kind, f]) =>
    el("li", { text: `${kind === "attachment" ? "依恋/移情" : "站外联系/付款"}（${f.count} 次，来自${(f.from || []).map((r) => ROLE[r]).join("、")}）：${(f.labels || []).join("、")}` }),
  );
  $("case-flags").replaceChildren(...flags);
  const bits = [`首次：${clock(c.opened_at)}`, `最近：${clock(c.last_seen_at)}`];
  if (c.guardian) bits.push("守护模式中");
  if (c.overtime_fen) bits.push(`平台已支付守护时长 ¥${(c.overtime_fen / 100).toFixed(2)}`);
  if (c.debrief) bits.push({ offered: "已提供复盘", accepted: "倾听师已预约复盘", declined: "倾听师暂不复盘" }[c.debrief] || "");
  $("case-times").textContent = bits.join(" · ");
}

function addMessage(m) {
  if (seen.has(m.seq)) return;
  seen.add(m.seq);
  const list = $("transcript");
  const li = el(
    "li",
    { "data-role": m.sender_role || "", "data-seq": String(m.seq), testid: "transcript-message" },
    el("span", { class: "who", text: `${ROLE[m.sender_role] || ""} · ${clock(m.created_at)}` }),
    el("div", { class: "bubble", text: m.body }),
  );
  let after = null;
  for (const node of list.children) if (Number(node.dataset.seq) < m.seq) after = node;
  if (after) after.after(li);
  else list.prepend(li);
  list.scrollTop = list.scrollHeight;
}

function eventText(e) {
  const d = e.data || {};
  const bits = [e.label];
  if (e.actor) bits.push(e.actor);
  if (d.tier && d.tier !== "none") bits.push(`${(boot.tier_labels || {})[d.tier] || d.tier}${d.level != null ? " " + d.level + "级" : ""}`);
  if (d.flag) bits.push((d.signals || []).map((x) => (boot.signal_labels || {})[x] || x).join("、"));
  if (d.amount_fen != null) bits.push(`¥${(d.amount_fen / 100).toFixed(2)}（${Math.round((d.seconds || 0) / 60)} 分钟）`);
  return bits.join(" · ") + (e.note ? "：" + e.note : "");
}

function renderEvents(events) {
  $("event-log").replaceChildren(
    ...(events || []).map((e) =>
      el(
        "li",
        { "data-kind": e.kind },
        el("time", { text: clock(e.at) }),
        el("span", { text: eventText(e) }),
      ),
    ),
  );
}

function renderAccess(rows) {
  const via = { page: "页面", api: "接口", live: "实时", join: "加入对话" };
  $("access-log").replaceChildren(
    ...rows.map((a) => el("li", {}, el("time", { text: clock(a.at) }), el("span", { text: `${a.reader}（${a.role}）· ${via[a.via] || a.via}` }))),
  );
}

async function refresh() {
  try {
    const v = await api(`/api/supervision/cases/${encodeURIComponent(c.id)}`);
    c = v;
    renderSummary();
    renderEvents(v.events);
  } catch {
    /* keep what is shown */
  }
}

async function act(path, body) {
  showError("");
  try {
    const out = await api(`/api/supervision/cases/${encodeURIComponent(c.id)}/${path}`, { method: "POST", body: body || {} });
    await refresh();
    return out;
  } catch (e) {
    showError(e instanceof ApiError ? e.message : "操作失败，请重试");
    return null;
  }
}

$("case-actions").addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button[data-action]");
  if (!btn) return;
  btn.disabled = true;
  await act(btn.dataset.action);
  btn.disabled = false;
});

$("whisper-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const box = $("whisper-body");
  if (!box.value.trim()) return;
  if (await act("whisper", { body: box.value })) box.value = "";
});

$("resolve-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const box = $("resolve-note");
  if (!box.value.trim()) return;
  await act("resolve", { note: box.value });
});

const sock = new LiveSocket({
  url: () => wsUrl("/ws/supervision"),
  onOpen() {
    sock.send({ type: "watch", case_id: c.id });
  },
  onFrame(f) {
    if (f.type === "message" && f.conversation_id === c.conversation_id) addMessage(f);
    else if (f.type === "case" && f.case && f.case.id === c.id) refresh();
    else if (f.type === "error" && f.message) showError(f.message);
  },
  onFatal(code) {
    if (code === 4401) location.href = "/login?next=" + encodeURIComponent(location.pathname);
  },
});

for (const m of boot.messages || []) addMessage(m);
renderSummary();
renderEvents(c.events);
renderAccess(boot.access || []);
sock.start();
