// Building blocks for the safety UI (chat page, listener console, supervisor
// console).  Everything is built with textContent: never user data in innerHTML.

import { zoned } from "./common.js";

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "testid") node.setAttribute("data-testid", v);
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "href" || k === "type") {
      node.setAttribute(k, v === true ? "" : String(v));
    } else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export function tierBadge(rank, label, testid) {
  return el("span", { class: "tier-badge", "data-rank": String(rank), text: label, testid });
}

export function chips(items, testid) {
  const list = (items || []).filter(Boolean);
  if (!list.length) return null;
  return el("ul", { class: "mini-chips", testid }, list.map((t) => el("li", { text: t })));
}

export function card({ cls, testid, title, badge, closable = false, body = [] }) {
  const head = el("h2", {}, badge || null, el("span", { text: title }));
  const node = el("section", { class: `safety-card ${cls || ""}`, testid, role: "region", "aria-label": title });
  if (closable) {
    const close = el("button", { type: "button", class: "close", text: "收起", "aria-expanded": "true" });
    close.addEventListener("click", () => {
      const collapsed = node.classList.toggle("collapsed");
      close.textContent = collapsed ? "展开" : "收起";
      close.setAttribute("aria-expanded", collapsed ? "false" : "true");
    });
    head.append(close);
  }
  node.append(head, el("div", { class: "body" }, body));
  return node;
}

const RANK = { none: 0, distress: 1, ideation: 2, plan: 3, imminent: 4 };
export const rankOf = (tier) => RANK[tier] ?? 0;

/** The listener's private guidance panel (ideation and above). */
export function guidancePanel(g) {
  const steps = el(
    "ol",
    { class: "steps" },
    (g.steps || []).map((s) => el("li", { "data-step": s.key }, el("strong", { text: `${s.title}：` }), s.text)),
  );
  return card({
    cls: "guidance",
    testid: "guidance-panel",
    title: g.title,
    badge: tierBadge(rankOf(g.tier), g.tier_label),
    closable: true,
    body: [steps, el("p", { class: "muted small", text: g.supervisor })],
  });
}

/** Distress: detected emotions and topics with a short approach hint. */
export function hintCard(f) {
  const h = f.hint || {};
  const emotions = (f.emotions || []).map((e) => `${e.label} ${Math.round(e.prob * 100)}%`);
  return card({
    cls: "hint-card",
    testid: "approach-hint",
    title: h.title || "情绪提示",
    badge: tierBadge(rankOf(f.tier), f.tier_label),
    closable: true,
    body: [
      chips(emotions, "hint-emotions"),
      chips(f.topics, "hint-topics"),
      el("p", { text: h.approach }),
      el("ul", {}, (h.steps || []).map((s) => el("li", { text: s }))),
      (h.explore || []).length ? el("p", { class: "muted small", text: "可以探索：" + h.explore.join("；") }) : null,
    ],
  });
}

export function hotlineCard(c) {
  const lines = el(
    "ul",
    { class: "hotline-lines" },
    (c.lines || []).map((l) =>
      el(
        "li",
        {},
        el("span", { class: "name", text: l.name }, l.note ? el("span", { class: "note", text: l.note }) : null),
        el("a", { href: `tel:${String(l.number).replace(/[^0-9+]/g, "")}`, text: l.number }),
      ),
    ),
  );
  return card({ cls: "hotline-card", testid: "hotline-card", title: c.title, closable: true, body: [el("p", { text: c.text }), lines] });
}

export function noteCard(f, testid) {
  return card({
    cls: "boundary-note",
    testid,
    title: f.title,
    closable: true,
    body: [chips(f.signals), el("p", { text: f.text })],
  });
}

export function whisperItem(w) {
  return el(
    "p",
    { testid: "whisper", "data-whisper-id": w.id },
    el("span", { class: "from", text: `${w.from || "督导"}：` }),
    w.body,
  );
}

export function clock(iso) {
  const z = zoned(iso);
  return z ? `${z.mo}/${z.d} ${String(z.h).padStart(2, "0")}:${String(z.mi).padStart(2, "0")}` : "";
}

export function waited(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} 秒`;
  if (s < 3600) return `${Math.floor(s / 60)} 分`;
  return `${Math.floor(s / 3600)} 小时 ${Math.floor((s % 3600) / 60)} 分`;
}
