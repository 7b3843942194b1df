// Directory: changing the sort re-submits the filter form (it works without JS through the 筛选 button too).

for (const el of document.querySelectorAll("[data-autosubmit]")) {
  el.addEventListener("change", () => el.form.requestSubmit());
}
