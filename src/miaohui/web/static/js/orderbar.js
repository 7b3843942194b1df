// The paid order running in a chat: remaining time for the seeker, the reply
// countdown for the listener (amber at 70 % of the window, red at breach),
// one-click extension, ending early.  Times come from the server; the
// countdown only interpolates between its updates.
import { api, dateTimeLabel } from "./common.js";
import { replyClockWarning } from "./notify.js";

function fmt(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}小时${m % 60}分` : `${m}:${String(s % 60).padStart(2, "0")}`;
}

export class OrderBar {
  constructor(boot) {
    this.meId = boot.me.user_id;
    this.role = boot.me.role;
    this.el = document.getElementById("order-bar");
    this.orders = new Map();
    this.skew = 0; // server clock − this device's clock
    for (const o of boot.orders || []) {
      this.orders.set(o.id, o);
      if (o.server_now) this.skew = new Date(o.server_now).getTime() - Date.now();
    }
    if (!this.el) return;
    this.el.addEventListener("click", (ev) => this.onClick(ev));
    this.render();
    setInterval(() => this.tick(), 500);
    const warn = sessionStorage.getItem("mh-budget-warning");
    if (warn) {
      sessionStorage.removeItem("mh-budget-warning");
      this.flash(warn);
    }
  }

  update(order) {
    if (!order || order.id === undefined) return;
    if (order.server_now) this.skew = new Date(order.server_now).getTime() - Date.now();
    if (["scheduled", "active"].includes(order.status)) this.orders.set(order.id, order);
    else {
      this.orders.delete(order.id);
      this.last = order;
    }
    this.render();
  }

  current() {
    const list = [...this.orders.values()].filter((o) => o.status === "active");
    return list[0] || null;
  }

  render() {
    if (!this.el) return;
    const o = this.current();
    const next = [...this.orders.values()].find((x) => x.status === "scheduled");
    this.el.replaceChildren();
    if (!o) {
      if (this.last && this.last.status !== "active") {
        const p = document.createElement("p");
        p.textContent = `本次服务已结束（${this.last.end_reason_label || ""}）。`;
        const a = document.createElement("a");
        a.href = `/orders/${this.last.id}`;
        a.textContent = "查看回执";
        p.append(" ", a);
        this.el.append(p);
        this.el.hidden = false;
      } else if (next) {
        const p = document.createElement("p");
        p.textContent = `已预约：${next.kind_label}，${dateTimeLabel(next.starts_at)} 开始`;
        this.el.append(p);
        this.el.hidden = false;
      } else {
        this.el.hidden = true;
      }
      return;
    }
    this.el.hidden = false;
    const info = document.createElement("span");
    info.className = "order-info";
    info.textContent = `${o.kind_label} · ${o.response_window_s}秒回 · `;
    const left = document.createElement("strong");
    left.dataset.testid = "order-remaining";
    this.leftEl = left;
    info.append("剩余 ", left);
    this.el.append(info);
    if (this.role === "listener") {
      const clock = document.createElement("span");
      clock.className = "reply-clock";
      clock.setAttribute("data-testid", "reply-clock");
      this.clockEl = clock;
      this.el.append(clock);
    } else if (this.role === "seeker") {
      const ext = document.createElement("button");
      ext.type = "button";
      ext.className = "btn btn-small";
      ext.dataset.action = "extend";
      ext.textContent = next ? "已续费" : "续费30分钟";
      ext.disabled = !!next;
      this.el.append(ext);
    }
    if (this.role === "seeker" || this.role === "listener") {
      // A supervisor who joined sees the order, but it is not theirs to extend or end.
      const end = document.createElement("button");
      end.type = "button";
      end.className = "btn btn-quiet btn-small";
      end.dataset.action = "end";
      end.textContent = "结束";
      this.el.append(end);
    }
    this.tick();
  }

  tick() {
    const o = this.current();
    if (!o || !this.leftEl) return;
    const now = Date.now() + this.skew;
    const left = new Date(o.ends_at).getTime() - now;
    // Still running past the paid end: guardian mode holds it open (the platform pays the extra time).
    if (left > -3000) this.leftEl.textContent = fmt(left);
    else this.leftEl.textContent = this.role === "listener" ? "守护模式 · 超出时间由平台承担" : "陪伴中";
    this.el.classList.toggle("ending", left < 5 * 60 * 1000 && left > -3000);
    if (this.clockEl) {
      if (!o.pending_since) {
        this.clockEl.textContent = "已回复";
        this.clockEl.dataset.state = "ok";
      } else {
        const waited = now - new Date(o.pending_since).getTime();
        const limit = o.response_window_s * 1000;
        this.clockEl.textContent = waited > limit ? `已超时 ${fmt(waited - limit)}` : `请在 ${fmt(limit - waited)} 内回复`;
        this.clockEl.dataset.state = waited > limit ? "breach" : waited > 0.7 * limit ? "amber" : "ok";
        if (this.clockEl.dataset.state === "amber") replyClockWarning(o, limit - waited);
      }
    }
  }

  flash(text) {
    const p = document.getElementById("chat-error");
    if (!p) return;
    p.textContent = text;
    p.hidden = false;
  }

  /** 续费: the price first (the agreed rate of this order), a yes, then the
   * purchase for no more than that; late at night the server asks for a
   * second confirmation after a pause, as on the purchase page. */
  async extend(o) {
    const q = await api(`/api/orders/${o.id}/extend/quote?kind=30m`);
    const price = `¥${(q.total_fen / 100).toFixed(2)}`;
    if (!confirm(`续费${q.kind_label}，按本单价格 ${price}，从本次结束时接着开始。确定支付吗？`)) return;
    const body = { kind: "30m", expected_total_fen: q.total_fen };
    for (;;) {
      try {
        this.update(await api(`/api/orders/${o.id}/extend`, { method: "POST", body }));
        return;
      } catch (err) {
        if (err.code === "confirm_required" && err.detail && !body.confirm_token) {
          this.flash(err.message);
          body.confirm_token = err.detail.confirm_token;
          await new Promise((ok) => setTimeout(ok, err.detail.wait_seconds * 1000 + 500));
          if (!confirm(`我想清楚了，确认续费 ${price}？`)) return;
          continue;
        }
        throw err;
      }
    }
  }

  async onClick(ev) {
    const btn = ev.target.closest("button[data-action]");
    const o = this.current();
    if (!btn || !o) return;
    btn.disabled = true;
    try {
      if (btn.dataset.action === "extend") {
        await this.extend(o);
        btn.disabled = false;
      } else if (btn.dataset.action === "end") {
        const msg = this.role === "listener" ? "提前结束会把未服务时长退还给对方，确定结束吗？" : "确定现在结束本次服务吗？";
        if (!confirm(msg)) {
          btn.disabled = false;
          return;
        }
        this.update(await api(`/api/orders/${o.id}/end`, { method: "POST", body: {} }));
      }
    } catch (err) {
      this.flash(err.message);
      btn.disabled = false;
    }
  }
}
