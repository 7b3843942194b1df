// 心情 (wellbeing.mood): the one-tap scale from _macros.mood_ask — before a
// paid sitting in the chat, after it on the receipt.  Saved at once; tapping
// another word changes it.  The listener never sees an answer.
import { api } from "./common.js";

const THANKS = {
  before: "谢谢。结束后可以在订单回执里说说聊完的感受。",
  after: "谢谢你告诉我们。这会帮你看清倾诉有没有帮到你。",
};

// Once the seeker starts talking, "how are you before we start?" has had its moment.
window.addEventListener("mh-sent", () => {
  for (const box of document.querySelectorAll('.mood-ask[data-phase="before"]')) box.hidden = true;
});

for (const box of document.querySelectorAll(".mood-ask")) {
  const note = box.querySelector(".mood-note");
  const buttons = [...box.querySelectorAll("button[data-score]")];
  box.addEventListener("click", async (ev) => {
    if (ev.target.closest(".mood-skip")) {
      box.hidden = true;
      return;
    }
    const btn = ev.target.closest("button[data-score]");
    if (!btn) return;
    for (const b of buttons) b.disabled = true;
    try {
      await api(`/api/orders/${encodeURIComponent(box.dataset.orderId)}/mood`, {
        method: "PUT",
        body: { phase: box.dataset.phase, score: Number(btn.dataset.score) },
      });
      for (const b of buttons) b.setAttribute("aria-pressed", b === btn ? "true" : "false");
      note.textContent = THANKS[box.dataset.phase];
      box.dataset.saved = "true";
      if (box.dataset.phase === "before") setTimeout(() => (box.hidden = true), 4000);
    } catch (e) {
      note.textContent = e.message || "没有保存上，请再点一次。";
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  });
}
