// Listener profile: "开始倾诉" opens (or reopens) the conversation, then goes to it.

import { ApiError, api } from "./common.js";

const button = document.getElementById("start-chat");
const errorBox = document.getElementById("start-error");

if (button) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    const label = button.textContent;
    button.textContent = "正在打开…";
    errorBox.hidden = true;
    try {
      const conv = await api("/api/conversations", {
        method: "POST",
        body: { listener_id: button.dataset.listenerId },
      });
      location.href = `/chat/${encodeURIComponent(conv.id)}`;
    } catch (e) {
      errorBox.textContent = e instanceof ApiError ? e.message : "打开会话失败，请重试";
      errorBox.hidden = false;
      button.disabled = false;
      button.textContent = label;
    }
  });
}
