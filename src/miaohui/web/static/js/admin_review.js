// Admin review queue and listener management: each card's form posts one
// decision and reports the outcome in place.

import { ApiError, api } from "./common.js";

async function decide(form, submitter) {
  const card = form.closest("[data-qual-id], [data-report-id], [data-listener-id]");
  const out = form.querySelector(".result");
  const f = new FormData(form);
  let path;
  let body;
  let done;
  switch (form.dataset.action) {
    case "approve": {
      const approve = submitter && submitter.value === "1";
      path = `/api/admin/qualifications/${card.dataset.qualId}/review`;
      body = { approve, note: String(f.get("note") || ""), valid_until: f.get("valid_until") || null };
      done = approve ? "已通过" : "已驳回";
      break;
    }
    case "report":
      path = `/api/admin/reports/${card.dataset.reportId}/decide`;
      body = { action: submitter ? submitter.value : "dismiss", note: String(f.get("note") || "") };
      done = { hide: "评价已隐藏", suspend: "已暂停", dismiss: "已关闭" }[body.action];
      break;
    case "suspend":
      path = `/api/admin/listeners/${form.dataset.listenerId}/suspend`;
      body = { reason: String(f.get("reason") || "").trim() };
      done = "已暂停";
      break;
    case "reinstate":
      path = `/api/admin/listeners/${form.dataset.listenerId}/reinstate`;
      body = { reason: String(f.get("reason") || "").trim() || "恢复上架" };
      done = "已恢复上架";
      break;
    default:
      return;
  }
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  try {
    await api(path, { method: "POST", body });
    out.textContent = done;
    card.classList.add("is-done");
  } catch (e) {
    out.textContent = e instanceof ApiError ? e.message : "操作失败，请重试";
    buttons.forEach((b) => (b.disabled = false));
  }
}

for (const form of document.querySelectorAll("form.decide-form")) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    decide(form, ev.submitter);
  });
}
