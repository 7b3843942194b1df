// Training quiz → POST /api/verification/training; shows the score and,
// for each wrong answer, why.

import { ApiError, api } from "./common.js";

const form = document.getElementById("quiz-form");
const errorBox = document.getElementById("quiz-error");
const result = document.getElementById("quiz-result");

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  errorBox.hidden = true;
  const answers = {};
  const blank = [];
  for (const fs of form.querySelectorAll(".quiz-q")) {
    const qid = fs.dataset.qid;
    const picked = fs.querySelector("input:checked");
    fs.classList.remove("is-wrong", "is-right");
    fs.querySelector(".quiz-why").hidden = true;
    if (picked) answers[qid] = Number(picked.value);
    else blank.push(fs);
  }
  if (blank.length) {
    errorBox.textContent = `还有 ${blank.length} 题没有作答`;
    errorBox.hidden = false;
    blank[0].scrollIntoView({ block: "center" });
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const g = await api("/api/verification/training", { method: "POST", body: { answers } });
    for (const fs of form.querySelectorAll(".quiz-q")) {
      const wrong = g.wrong.includes(fs.dataset.qid);
      fs.classList.add(wrong ? "is-wrong" : "is-right");
      const why = fs.querySelector(".quiz-why");
      if (wrong) {
        why.textContent = g.explanations[fs.dataset.qid] || "";
        why.hidden = false;
      }
    }
    result.replaceChildren();
    const p = document.createElement("p");
    p.className = g.passed ? "ok" : "alert";
    p.textContent = g.passed
      ? `通过：答对 ${g.correct}/${g.total} 题。现在可以接单了（实名认证也需完成）。`
      : g.missed_must.length
        ? `未通过：答对 ${g.correct}/${g.total} 题，但危机题有错。请重读「危机信号与应对」后再试。`
        : `未通过：答对 ${g.correct}/${g.total} 题，需要至少 ${g.pass_correct} 题。看看下面的解释，再试一次。`;
    result.append(p);
    if (g.passed) {
      const a = document.createElement("a");
      a.href = "/verification";
      a.className = "btn btn-ghost";
      a.textContent = "返回认证页";
      result.append(a);
    }
    result.hidden = false;
    result.scrollIntoView({ block: "center" });
  } catch (e) {
    errorBox.textContent = e instanceof ApiError ? e.message : "提交失败，请重试";
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
});
