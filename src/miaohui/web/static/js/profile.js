// Listener profile: "开始倾诉" opens (or reopens) the conversation, then goes to it; ☆ 收藏 keeps the listener.

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

// 收藏: a star toggle.  The button says what is true on the server: it flips
// only after the PUT/DELETE answered.
const fav = document.getElementById("fav-toggle");
const favError = document.getElementById("fav-error");

function showFavorite(on) {
  fav.setAttribute("aria-pressed", on ? "true" : "false");
  fav.querySelector(".star").textContent = on ? "★" : "☆";
  fav.querySelector(".fav-label").textContent = on ? "已收藏" : "收藏";
}

if (fav) {
  fav.addEventListener("click", async () => {
    const on = fav.getAttribute("aria-pressed") !== "true";
    fav.disabled = true;
    favError.hidden = true;
    try {
      const out = await api(`/api/favorites/${encodeURIComponent(fav.dataset.listenerId)}`, {
        method: on ? "PUT" : "DELETE",
      });
      showFavorite(out.favorite);
    } catch (e) {
      favError.textContent = e instanceof ApiError ? e.message : "没有保存成功，请重试";
      favError.hidden = false;
    } finally {
      fav.disabled = false;
    }
  });
}
