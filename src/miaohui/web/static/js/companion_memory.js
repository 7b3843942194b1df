// The memory page: what the AI companion keeps, editable and deletable.
import { ApiError, api } from "./common.js";

const list = document.getElementById("memory-list");
const empty = document.getElementById("memory-empty");
const error = document.getElementById("memory-error");

function fail(e) {
  error.textContent = e instanceof ApiError ? e.message : "操作失败，请重试";
  error.hidden = false;
}

function refreshEmpty() {
  empty.hidden = list.children.length > 0;
}

function row(m) {
  const li = document.createElement("li");
  li.className = "memory-item";
  li.dataset.id = m.id;
  li.setAttribute("data-testid", "memory-item");
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = m.kind_label;
  const input = document.createElement("input");
  input.className = "memory-text";
  input.maxLength = 80;
  input.value = m.text;
  input.setAttribute("aria-label", "内容");
  const save = document.createElement("button");
  save.type = "button";
  save.className = "btn btn-quiet btn-small";
  save.dataset.action = "save";
  save.textContent = "保存";
  const del = document.createElement("button");
  del.type = "button";
  del.className = "btn btn-quiet btn-small";
  del.dataset.action = "delete";
  del.setAttribute("data-testid", "memory-delete");
  del.textContent = "删除";
  li.append(tag, input, save, del);
  return li;
}

list.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button[data-action]");
  if (!btn) return;
  const li = btn.closest("li");
  const id = encodeURIComponent(li.dataset.id);
  error.hidden = true;
  try {
    if (btn.dataset.action === "delete") {
      await api(`/api/companion/memory/${id}`, { method: "DELETE" });
      li.remove();
      refreshEmpty();
    } else {
      const text = li.querySelector("input").value.trim();
      if (!text) return;
      await api(`/api/companion/memory/${id}`, { method: "PATCH", body: { text } });
      btn.textContent = "已保存";
      setTimeout(() => (btn.textContent = "保存"), 1500);
    }
  } catch (e) {
    fail(e);
  }
});

document.getElementById("memory-add").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("memory-new");
  const text = input.value.trim();
  if (!text) return;
  try {
    const m = await api("/api/companion/memory", {
      method: "POST",
      body: { kind: document.getElementById("memory-kind").value, text },
    });
    list.append(row(m));
    input.value = "";
    refreshEmpty();
  } catch (e) {
    fail(e);
  }
});

document.getElementById("memory-clear").addEventListener("click", async () => {
  if (!confirm("删除 AI 记住的全部内容？")) return;
  try {
    await api("/api/companion/memory", { method: "DELETE" });
    list.replaceChildren();
    refreshEmpty();
  } catch (e) {
    fail(e);
  }
});

document.getElementById("memory-enabled").addEventListener("change", async (ev) => {
  try {
    await api("/api/companion/settings", { method: "PUT", body: { memory_enabled: ev.target.checked } });
  } catch (e) {
    fail(e);
  }
});
