// A row of chips that scrolls sideways on a phone (.chips-scroll): the chosen
// chip is brought into view, and an edge with more chips beyond it fades
// (data-more="start end"), so nobody takes the row for all there is.

function mark(row) {
  const more = [];
  if (row.scrollLeft > 2) more.push("start");
  if (row.scrollLeft + row.clientWidth < row.scrollWidth - 2) more.push("end");
  if (more.length) row.dataset.more = more.join(" ");
  else delete row.dataset.more;
}

for (const row of document.querySelectorAll(".chips-scroll")) {
  const chosen = row.querySelector(".chip-active, [aria-current='page']");
  if (chosen && row.scrollWidth > row.clientWidth) {
    row.scrollLeft = Math.max(0, chosen.offsetLeft - row.offsetLeft - (row.clientWidth - chosen.offsetWidth) / 2);
  }
  mark(row);
  row.addEventListener("scroll", () => mark(row), { passive: true });
  new ResizeObserver(() => mark(row)).observe(row);
}
