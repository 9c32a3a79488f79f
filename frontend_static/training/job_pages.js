// Training job admin pages: the add form lists only the chosen dataset's batches; a running job's page follows
// the run (reloads every 5 s while its progress says it is not finished).
(function () {
  "use strict";
  const FOLLOW_MS = 5000;
  document.addEventListener("DOMContentLoaded", function () {
    const dataset = document.getElementById("id_dataset");
    const batches = document.getElementById("id_batches");
    if (dataset && batches) {
      const limit = function () {
        Array.from(batches.options).forEach(function (option) {
          const other = option.dataset.dataset !== dataset.value;
          option.hidden = other;
          option.disabled = other;
          if (other) option.selected = false;
        });
      };
      dataset.addEventListener("change", limit);
      limit();
    }
    if (document.querySelector('[data-follow="yes"]')) setTimeout(function () { window.location.reload(); }, FOLLOW_MS);
  });
})();
