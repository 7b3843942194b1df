// Handoff to a human: the seeker reviews (and edits) the summary first; it is
// sent only with their choice — to 帮我找人 (matching) or to one listener.
import { ApiError, api } from "./common.js";

const summary = document.getElementById("handoff-summary");
const include = document.getElementById("handoff-include");
const error = document.getElementById("handoff-error");
const matchForm = document.getElementById("handoff-match");

function text() {
  return include.checked ? summary.value.trim() : "";
}

if (matchForm) {
  matchForm.addEventListener("submit", () => {
    document.getElementById("handoff-match-text").value = text().slice(0, 300);
  });
}

for (const b of document.querySelectorAll("[data-handoff]")) {
  b.addEventListener("click", async () => {
    b.disabled = true;
    error.hidden = true;
    try {
      const r = await api("/api/companion/handoff", {
        method: "POST",
        body: { listener_id: b.dataset.handoff, summary: text() || null },
      });
      location.href = `/chat/${encodeURIComponent(r.conversation_id)}`;
    } catch (e) {
      b.disabled = false;
      error.textContent = e instanceof ApiError ? e.message : "没能打开对话，请稍后再试";
      error.hidden = false;
    }
  });
}
