// Listener's own profile form → PUT /api/listener/profile.

import { ApiError, api } from "./common.js";

const form = document.getElementById("profile-form");
const errorBox = document.getElementById("profile-error");
const saved = document.getElementById("profile-saved");

const list = (s) =>
  s
    .split(/[,，、;；\n]+/)
    .map((x) => x.trim())
    .filter(Boolean);

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  errorBox.hidden = true;
  saved.hidden = true;
  const f = new FormData(form);
  const yuan = Number(String(f.get("price_yuan") || "0").trim() || "0");
  if (!Number.isFinite(yuan) || yuan < 0) {
    errorBox.textContent = "价格需为不小于 0 的数字";
    errorBox.hidden = false;
    return;
  }
  const body = {
    headline: String(f.get("headline") || "").trim(),
    bio: String(f.get("bio") || "").trim(),
    topics: list(String(f.get("topics") || "")),
    languages: list(String(f.get("languages") || "")),
    qualifications: list(String(f.get("qualifications") || "")),
    price_per_hour_fen: Math.round(yuan * 100),
  };
  if (form.elements.gender) body.gender = String(f.get("gender") || "");
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    await api("/api/listener/profile", { method: "PUT", body });
    saved.hidden = false;
  } catch (e) {
    errorBox.textContent =
      e instanceof ApiError && e.code !== "invalid_input" ? e.message : "输入有误：请检查话题数量（≤12）、每项长度（≤20 字）和价格";
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
});
