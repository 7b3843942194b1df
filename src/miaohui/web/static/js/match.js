// 帮我找人 results: "开始倾诉" opens (or reopens) the conversation with that listener.

import { ApiError, api } from "./common.js";

const errorBox = document.getElementById("start-error");

for (const button of document.querySelectorAll("[data-start-chat]")) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    const label = button.textContent;
    button.textContent = "正在打开…";
    if (errorBox) errorBox.hidden = true;
    try {
      const conv = await api("/api/conversations", { method: "POST", body: { listener_id: button.dataset.startChat } });
      location.href = `/chat/${encodeURIComponent(conv.id)}`;
    } catch (e) {
      if (errorBox) {
        errorBox.textContent = e instanceof ApiError ? e.message : "打开会话失败，请重试";
        errorBox.hidden = false;
      }
      button.disabled = false;
      button.textContent = label;
    }
  });
}
