// Batch dashboard: the state filter applies on change, and "select all" for the bulk decision form.
(function () {
  "use strict";
  const stateFilter = document.getElementById("state-filter");
  if (stateFilter) stateFilter.addEventListener("change", () => stateFilter.form.submit());
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll('#assignments input[name="assignments"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
