// Verification page: real-name form → POST /api/verification/identity;
// qualification proof upload (multipart) → POST /api/verification/qualifications.

import { ApiError, api, csrfToken } from "./common.js";

function showError(box, e, fallback) {
  box.textContent = e instanceof ApiError ? e.message : fallback;
  box.hidden = false;
}

const idForm = document.getElementById("identity-form");
if (idForm) {
  const box = document.getElementById("identity-error");
  idForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    box.hidden = true;
    const f = new FormData(idForm);
    const button = idForm.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await api("/api/verification/identity", {
        method: "POST",
        body: { legal_name: String(f.get("legal_name") || "").trim(), id_number: String(f.get("id_number") || "").trim() },
      });
      location.reload();
    } catch (e) {
      showError(box, e, "提交失败，请重试");
      button.disabled = false;
    }
  });
}

const qualForm = document.getElementById("qual-form");
if (qualForm) {
  const box = document.getElementById("qual-error");
  const kind = qualForm.elements.kind;
  const titleField = document.getElementById("qual-title-field");
  const syncTitle = () => {
    titleField.hidden = kind.selectedOptions[0]?.dataset.needsTitle !== "true";
  };
  kind.addEventListener("change", syncTitle);
  syncTitle();
  qualForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    box.hidden = true;
    const file = qualForm.elements.file.files[0];
    if (!file) {
      box.textContent = "请选择证明文件";
      box.hidden = false;
      return;
    }
    const button = qualForm.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      // multipart: the api() helper sends JSON, so fetch directly (same CSRF header).
      const res = await fetch("/api/verification/qualifications", {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
        credentials: "same-origin",
        body: new FormData(qualForm),
      });
      if (!res.ok) {
        let err = null;
        try {
          err = (await res.json()).error;
        } catch {
          err = null;
        }
        throw new ApiError((err && err.message) || `上传失败（${res.status}）`, res.status, err && err.code);
      }
      location.reload();
    } catch (e) {
      showError(box, e, "上传失败，请检查网络后重试");
      button.disabled = false;
    }
  });
}
