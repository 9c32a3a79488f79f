// Batch dashboard: "select all" for the bulk decision form.
(function () {
  "use strict";
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll('#assignments input[name="assignments"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
