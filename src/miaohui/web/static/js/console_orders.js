// The listener console's running orders, most urgent first: for each, the
// countdown of the oldest unanswered seeker message — amber at 70 % of the
// committed window, red once breached.  Order events arrive on the inbox
// socket (inbox.js re-dispatches them); the list is re-read from the server.
import { api, readBoot } from "./common.js";
import { replyClockWarning } from "./notify.js";

const list = document.getElementById("live-orders");
const empty = document.getElementById("live-orders-empty");
let orders = readBoot("orders-boot") || [];
let skew = 0; // server clock − this device's clock

function noteSkew() {
  const o = orders.find((x) => x.server_now);
  if (o) skew = new Date(o.server_now).getTime() - Date.now();
}

function urgency(o) {
  return o.pending_since ? new Date(o.pending_since).getTime() + o.response_window_s * 1000 : Infinity;
}

function fmt(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}分${s % 60}秒` : `${s}秒`;
}

function render() {
  orders.sort((a, b) => urgency(a) - urgency(b) || new Date(a.ends_at) - new Date(b.ends_at));
  list.replaceChildren(
    ...orders.map((o) => {
      const li = document.createElement("li");
      li.className = "order-row";
      li.dataset.orderId = o.id;
      li.setAttribute("data-testid", "live-order");
      const a = document.createElement("a");
      a.href = `/chat/${o.conversation_id}`;
      const title = document.createElement("span");
      title.className = "order-title";
      title.textContent = `${o.kind_label} · ${o.response_window_s}秒回`;
      const clock = document.createElement("span");
      clock.className = "reply-clock";
      clock.setAttribute("data-testid", "order-countdown");
      const left = document.createElement("span");
      left.className = "muted small order-left";
      a.append(title, clock, left);
      li.append(a);
      return li;
    }),
  );
  empty.hidden = orders.length > 0;
  tick();
}

function tick() {
  const now = Date.now() + skew;
  for (const li of list.children) {
    const o = orders.find((x) => x.id === li.dataset.orderId);
    if (!o) continue;
    const clock = li.querySelector(".reply-clock");
    if (o.pending_since) {
      const waited = now - new Date(o.pending_since).getTime();
      const limit = o.response_window_s * 1000;
      clock.dataset.state = waited > limit ? "breach" : waited > 0.7 * limit ? "amber" : "ok";
      if (clock.dataset.state === "amber") replyClockWarning(o, limit - waited);
      clock.textContent = waited > limit ? `已超时 ${fmt(waited - limit)}` : `${fmt(limit - waited)} 内回复`;
    } else {
      clock.dataset.state = "idle";
      clock.textContent = "已回复";
    }
    li.querySelector(".order-left").textContent = `剩余 ${fmt(new Date(o.ends_at).getTime() - now)}`;
  }
}

let timer = null;
async function refresh() {
  try {
    orders = await api("/api/listener/orders/live");
    noteSkew();
    render();
  } catch {
    /* the next event or the periodic refresh tries again */
  }
}

window.addEventListener("mh-order", () => {
  clearTimeout(timer);
  timer = setTimeout(refresh, 100);
});
setInterval(tick, 500);
setInterval(refresh, 30000);
noteSkew();
render();
