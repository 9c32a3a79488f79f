// Batch dashboard: the state filter applies on change, and "select all" for the bulk decision form.
const stateFilter = document.getElementById("state-filter");
if (stateFilter) stateFilter.addEventListener("change", () => stateFilter.form.submit());
const all = document.getElementById("select-all");
if (all) {
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('#assignments input[name="assignments"]')) box.checked = all.checked;
  });
}
