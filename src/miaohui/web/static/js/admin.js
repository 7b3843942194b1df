// Admin: approve pending listener profiles.

import { ApiError, api } from "./common.js";

for (const button of document.querySelectorAll("button.approve")) {
  button.addEventListener("click", async () => {
    const card = button.closest(".pending-card");
    const result = card.querySelector(".approve-result");
    button.disabled = true;
    result.textContent = "";
    try {
      await api(`/api/admin/listeners/${encodeURIComponent(button.dataset.listenerId)}/approve`, { method: "POST" });
      button.textContent = "已批准";
      result.textContent = "已上架到倾听师列表";
      card.classList.add("approved");
    } catch (e) {
      button.disabled = false;
      result.textContent = e instanceof ApiError ? e.message : "操作失败，请重试";
    }
  });
}
