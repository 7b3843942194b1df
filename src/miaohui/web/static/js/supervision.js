// The supervisor console: the live queue over /ws/supervision.  Ordered by
// risk (rank, then level), then by waiting time — never first come, first
// served.  Plan / imminent cases and listeners' calls for help raise an alarm:
// a pulsing banner and, once sound is enabled, a WebAudio tone.
import { LiveSocket, api, readBoot, wsUrl } from "./common.js";
import { audioContext, mountSettings, notify, resume, tones, watch } from "./notify.js";
import { chips, el, tierBadge, waited } from "./safety_ui.js";

const boot = readBoot("supervision-boot");
const $ = (id) => document.getElementById(id);
const queueEl = $("case-queue");
const emptyEl = $("queue-empty");
const countEl = $("queue-count");
const banner = $("alarm-banner");
const bannerText = $("alarm-text");
const recentEl = $("recent-cases");
const recentEmpty = $("recent-empty");
const soundBtn = $("sound-toggle");

const cases = new Map(); // id -> summary (open ones)
let recent = boot.recent || [];
let skew = 0; // server clock − this device's clock
const fresh = new Set(); // ids whose alarm has not been looked at yet

function noteSkew(c) {
  if (c && c.server_now) skew = new Date(c.server_now).getTime() - Date.now();
}

function byRisk(a, b) {
  return b.rank - a.rank || b.level - a.level || new Date(a.opened_at) - new Date(b.opened_at);
}

const needsHelp = (c) => c.status === "open" && (c.rank >= 3 || c.worried);

function flagLabels(c) {
  const out = [];
  for (const [kind, f] of Object.entries(c.flags || {})) {
    out.push((kind === "attachment" ? "依恋：" : "站外：") + (f.labels || []).join("、"));
  }
  return out;
}

function item(c) {
  const a = el("a", {
    class: "case-item" + (needsHelp(c) ? " alarm" : "") + (fresh.has(c.id) ? "" : " seen"),
    href: `/supervision/cases/${encodeURIComponent(c.id)}`,
    testid: "case-item",
    "data-case-id": c.id,
    "data-rank": String(c.rank),
    "data-alarm": needsHelp(c) ? "true" : "false",
  });
  const who = el(
    "div",
    { class: "case-who" },
    tierBadge(c.rank, `${c.tier_label} · ${c.level}级`, "case-tier"),
    el("span", { text: `${c.seeker ? c.seeker.display_name : "倾诉者"} · ${c.listener ? c.listener.display_name : ""}` }),
  );
  const wait = el("span", { class: "case-wait", "data-opened": c.opened_at });
  const meta = el(
    "div",
    { class: "case-meta" },
    el("span", { class: "tag", text: c.status_label }),
    c.guardian ? el("span", { class: "tag tag-guardian", text: "守护中" }) : null,
    c.worried ? el("span", { class: "tag tag-worry", text: "倾听师求助" }) : null,
    ...flagLabels(c).map((t) => el("span", { class: "tag tag-flag", text: t })),
  );
  const sig = chips((c.signals || []).filter((s) => s.key !== "worry").map((s) => s.label).slice(0, 6));
  if (sig) meta.append(sig);
  a.append(who, wait, meta);
  return el("li", {}, a);
}

function render() {
  const list = [...cases.values()].sort(byRisk);
  queueEl.replaceChildren(...list.map(item));
  emptyEl.hidden = list.length > 0;
  countEl.textContent = list.length ? `（${list.length}）` : "";
  const urgent = list.filter(needsHelp);
  banner.hidden = urgent.length === 0;
  if (urgent.length) bannerText.textContent = `${urgent.length} 个个案需要立即处理：${urgent[0].tier_label}${urgent[0].worried ? "（倾听师求助）" : ""}`;
  document.documentElement.dataset.alarm = urgent.length ? "on" : "off";
  document.title = (urgent.length ? `(!${urgent.length}) ` : "") + document.title.replace(/^\(!\d+\) /, "");
  tick();
  recentEl.replaceChildren(...recent.slice(0, 20).map(item));
  recentEmpty.hidden = recent.length > 0;
}

function tick() {
  const now = Date.now() + skew;
  for (const w of queueEl.querySelectorAll(".case-wait")) {
    w.textContent = "等待 " + waited((now - new Date(w.dataset.opened).getTime()) / 1000);
  }
}

// ------------------------------------------------------------------ sound

let soundOn = localStorage.getItem("mh-alarm-sound") === "on";

// Three rising two-tone chirps: noticeable without being shrill.
const ALARM = [0, 1, 2].flatMap((i) => [[880, i * 0.6, 0.18], [1175, i * 0.6 + 0.18, 0.18]]);

function playAlarm() {
  document.documentElement.dataset.alarmCount = String(Number(document.documentElement.dataset.alarmCount || 0) + 1);
  if (soundOn) tones(ALARM, 0.25);
}

function showSound() {
  soundBtn.setAttribute("aria-pressed", soundOn ? "true" : "false");
  soundBtn.textContent = soundOn ? "提示音：开" : "开启提示音";
}

soundBtn.addEventListener("click", () => {
  soundOn = !soundOn;
  localStorage.setItem("mh-alarm-sound", soundOn ? "on" : "off");
  showSound();
  if (soundOn) playAlarm(); // a user gesture: browsers only allow audio after one
});
// Any click on the page unlocks audio that was enabled in an earlier visit.
document.addEventListener("pointerdown", () => soundOn && audioContext(), { once: true });

// ----------------------------------------------------------------- events

function upsert(c) {
  noteSkew(c);
  if (c.status === "resolved") {
    cases.delete(c.id);
    recent = [c, ...recent.filter((r) => r.id !== c.id)];
  } else {
    cases.set(c.id, c);
  }
}

async function reload() {
  try {
    const list = await api("/api/supervision/queue");
    cases.clear();
    for (const c of list) upsert(c);
    render();
  } catch {
    /* keep what we have; the next event or reconnect refreshes */
  }
}

let opened = false;
const sock = new LiveSocket({
  url: () => wsUrl("/ws/supervision"),
  onFrame(f) {
    if (f.type !== "case" || !f.case) return;
    upsert(f.case);
    if (f.alarm) {
      fresh.add(f.case.id);
      playAlarm();
      notify({
        role: "supervisor",
        topic: "cases",
        title: "秒回 · 需要立即处理",
        body: `${f.case.tier_label}${f.case.worried ? "（倾听师求助）" : ""}，请到督导台处理`,
        tag: `mh-case-${f.case.id}`,
        url: `/supervision/cases/${encodeURIComponent(f.case.id)}`,
        urgent: true,
        chime: false, // the alarm above is this page's sound
      });
    }
    render();
  },
  onOpen() {
    if (opened) reload(); // events may have been missed while disconnected
    opened = true;
  },
  onState(state) {
    $("sup-banner").hidden = !(state === "reconnecting" || state === "offline");
  },
  onFatal(code) {
    if (code === 4401) location.href = "/login?next=" + encodeURIComponent(location.pathname);
  },
});

for (const c of boot.queue || []) {
  upsert(c);
  if (needsHelp(c)) fresh.add(c.id);
}
showSound();
render();
if ([...cases.values()].some(needsHelp)) playAlarm();
setInterval(tick, 1000);
setInterval(reload, 60000);
watch("cases");
mountSettings("supervisor");
resume("supervisor");
sock.start();
