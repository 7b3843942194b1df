// Orders: buying (with the late-night second confirmation), budget,
// disputes, gifts, offerings and dispute decisions.  Every rule is enforced
// by the server; this only asks and shows its (Chinese) answers.
import { api } from "./common.js";

const $ = (sel) => document.querySelector(sel);

function show(id, text) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = text;
  el.hidden = !text;
}

function fail(err, id = "order-error") {
  show(id, err.message || "操作失败，请重试");
}

// ------------------------------------------------------------------ buying
const yuan = (fen) => `¥${(fen / 100).toFixed(2)}`;

const buy = $("#buy");
if (buy) {
  let token = null;
  buy.addEventListener("click", async () => {
    show("buy-error", "");
    buy.disabled = true;
    try {
      // The total shown on the button: the server never charges more (409 price_changed).
      const res = await api("/api/orders", {
        method: "POST",
        body: {
          listener_id: buy.dataset.listenerId,
          kind: buy.dataset.kind,
          expected_total_fen: Number(buy.dataset.total),
          confirm_token: token,
        },
      });
      if (res.budget_warning) sessionStorage.setItem("mh-budget-warning", res.budget_warning);
      location.href = `/chat/${res.order.conversation_id}`;
    } catch (err) {
      if (err.code === "price_changed" && err.detail) {
        // Nothing was charged: show the new figure; the next click agrees to it.
        buy.dataset.total = String(err.detail.total_fen);
        token = null;
        const total = document.querySelector("[data-testid=quote-total]");
        if (total) total.textContent = yuan(err.detail.quote.total_fen);
        buy.textContent = `同意新价格并支付（最多 ${yuan(err.detail.total_fen)}）`;
        show("buy-note", err.message);
        buy.disabled = false;
        return;
      }
      if (err.code === "confirm_required" && err.detail) {
        token = err.detail.confirm_token;
        let left = err.detail.wait_seconds;
        show("buy-note", err.message);
        const label = buy.textContent;
        const timer = setInterval(() => {
          left -= 1;
          buy.textContent = left > 0 ? `请稍候 ${left} 秒` : "我想清楚了，确认支付";
          if (left <= 0) {
            clearInterval(timer);
            buy.disabled = false;
          }
        }, 1000);
        buy.dataset.label = label;
        return;
      }
      fail(err, "buy-error");
      buy.disabled = false;
    }
  });
}

// ------------------------------------------------------------------ budget
const budgetForm = $("#budget-form");
if (budgetForm) {
  budgetForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const limit = budgetForm.limit.value.trim();
    try {
      await api("/api/me/budget", {
        method: "PUT",
        body: { monthly_limit_fen: limit ? Math.round(Number(limit) * 100) : null, hard_cap: budgetForm.hard_cap.checked },
      });
      location.reload();
    } catch (err) {
      fail(err, "budget-error");
    }
  });
}

// ------------------------------------------------------- dispute and gifts
const disputeForm = $("#dispute-form");
if (disputeForm) {
  disputeForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/api/orders/${disputeForm.dataset.orderId}/disputes`, {
        method: "POST",
        body: { reason: disputeForm.reason.value },
      });
      location.reload();
    } catch (err) {
      fail(err);
    }
  });
}

const giftForm = $("#gift-form");
if (giftForm) {
  giftForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/api/orders/${giftForm.dataset.orderId}/gifts`, {
        method: "POST",
        body: { amount_fen: Math.round(Number(giftForm.amount.value) * 100) },
      });
      giftForm.reset();
      show("order-note", "谢谢你的心意，已送出（申诉期内可退回）。");
    } catch (err) {
      fail(err);
    }
  });
}

// -------------------------------------------------------------- offerings
/** The answer beside the form's own button (else at the foot of the page). */
function answer(form, text, bad = false) {
  const out = form.querySelector(".form-result");
  if (!out) {
    if (bad) fail({ message: text });
    else show("order-note", text);
    return;
  }
  out.textContent = text;
  out.classList.toggle("bad", bad);
}

// A change since the last save: the old 已保存 no longer holds.
for (const form of document.querySelectorAll(".offering-form, #capacity-form")) {
  form.addEventListener("input", () => answer(form, ""));
}

for (const form of document.querySelectorAll(".offering-form")) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { response_window_s: Number(form.response_window_s.value), active: form.active.checked };
    if (form.daily_start) {
      body.daily_start = form.daily_start.value;
      body.daily_minutes = Number(form.daily_minutes.value);
    }
    try {
      await api(`/api/listener/offerings/${form.dataset.kind}`, { method: "PUT", body });
      answer(form, "已保存");
    } catch (err) {
      answer(form, err.message || "保存失败，请重试", true);
    }
  });
}

const capacityForm = $("#capacity-form");
if (capacityForm) {
  capacityForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("/api/listener/capacity", { method: "PUT", body: { capacity: Number(capacityForm.capacity.value) } });
      answer(capacityForm, "已保存");
    } catch (err) {
      answer(capacityForm, err.message || "保存失败，请重试", true);
    }
  });
}

// ------------------------------------------------------ dispute decisions
for (const form of document.querySelectorAll(".resolve-form")) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/api/admin/disputes/${form.dataset.orderId}/resolve`, {
        method: "POST",
        body: { refund_fen: Math.round(Number(form.refund.value) * 100), note: form.note.value },
      });
      location.reload();
    } catch (err) {
      fail(err);
    }
  });
}
