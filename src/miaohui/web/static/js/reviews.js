// Reviews: the review form (seeker), replies (the reviewed listener) and
// reports (anyone signed in) on a profile.

import { ApiError, api } from "./common.js";

const msg = (e, fallback) => (e instanceof ApiError ? e.message : fallback);

const form = document.getElementById("review-form");
if (form) {
  const box = document.getElementById("review-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    box.hidden = true;
    const f = new FormData(form);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await api(`/api/orders/${encodeURIComponent(form.dataset.orderId)}/review`, {
        method: "POST",
        body: { stars: Number(f.get("stars")), tags: f.getAll("tags").map(String), text: String(f.get("text") || "") },
      });
      location.href = `/listeners/${encodeURIComponent(form.dataset.listenerId)}#reviews`;
    } catch (e) {
      box.textContent = msg(e, "提交失败，请重试");
      box.hidden = false;
      button.disabled = false;
    }
  });
}

for (const replyForm of document.querySelectorAll("form.reply-form")) {
  replyForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = replyForm.querySelector(".result");
    const text = String(new FormData(replyForm).get("text") || "").trim();
    if (!text) return;
    try {
      await api(`/api/reviews/${encodeURIComponent(replyForm.dataset.reviewId)}/reply`, { method: "PUT", body: { text } });
      location.reload();
    } catch (e) {
      out.textContent = msg(e, "回复失败，请重试");
    }
  });
}

for (const reportForm of document.querySelectorAll("form.report-form")) {
  reportForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = reportForm.querySelector(".result");
    const reason = String(new FormData(reportForm).get("reason") || "").trim();
    if (!reason) return;
    const button = reportForm.querySelector("button");
    button.disabled = true;
    try {
      await api(`/api/reviews/${encodeURIComponent(reportForm.dataset.reviewId)}/report`, {
        method: "POST",
        body: { reason },
      });
      out.textContent = "已举报，管理员会尽快处理";
    } catch (e) {
      out.textContent = msg(e, "举报失败，请重试");
      button.disabled = false;
    }
  });
}
