// Training job admin pages: the add form lists only the chosen dataset's batches; a running job's page follows
// the run (reloads every 5 s while its progress says it is not finished). A module: it runs once the page is parsed.
const FOLLOW_MS = 5000;

function limitBatchesToDataset(dataset, batches) {
  for (const option of batches.options) {
    const other = option.dataset.dataset !== dataset.value;
    option.hidden = other;
    option.disabled = other;
    if (other) option.selected = false;
  }
}

const dataset = document.getElementById("id_dataset");
const batches = document.getElementById("id_batches");
if (dataset && batches) {
  dataset.addEventListener("change", () => limitBatchesToDataset(dataset, batches));
  limitBatchesToDataset(dataset, batches);
}
if (document.querySelector('[data-follow="yes"]')) setTimeout(() => window.location.reload(), FOLLOW_MS);
