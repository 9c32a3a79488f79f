/*
 * ImageNet-style page: one class, its candidate images in a grid; a click toggles selection.
 * Per image it records clicks (selected / deselected, with the point as fractions of the displayed image),
 * hover enter/leave and the mouse trace (at most one sample per 17 ms per page), appending to plain arrays.
 * Keyboard: every candidate is a checkbox in the tab order; Space or Enter toggles it, recorded as a toggle with
 * usingKeyboard and no point (the worker pointed at nothing, so no point is made up).
 */
import { element, fractionIn, webLink } from "../../lib/dom.js";
import { applyToRecord, newRecord, savedRecord } from "./record.js";

const MIN_TRACE_INTERVAL_MS = 17; // at most 60 samples a second, per page

function classPanel(category) {
  const panel = element("section", "class-panel");
  const heading = element("h2", "class-name");
  heading.append("Select every image that contains: ", element("strong", "", category.name));
  panel.appendChild(heading);
  if (category.synonyms && category.synonyms.length) {
    panel.appendChild(element("p", "class-synonyms", `Also called: ${category.synonyms.join(", ")}`));
  }
  if (category.definition) panel.appendChild(element("p", "class-definition", category.definition));
  const hrefs = (category.reference_links || []).map((href) => webLink(href, document.baseURI)).filter(Boolean);
  if (hrefs.length) {
    const links = element("p", "class-links", "See: ");
    hrefs.forEach((href, i) => {
      const link = element("a", "", `example ${i + 1}`);
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      links.append(link, " ");
    });
    panel.appendChild(links);
  }
  return panel;
}

/** One candidate: a checkbox figure around its image. */
function candidateCell(item, position, count) {
  const cell = element("figure", "candidate");
  cell.tabIndex = 0;
  cell.setAttribute("role", "checkbox");
  cell.setAttribute("aria-checked", "false");
  cell.setAttribute("aria-label", `Image ${position + 1} of ${count}`);
  cell.dataset.imageId = item.image_id;
  const image = element("img", "candidate-image");
  image.src = item.url;
  if (item.srcset) image.srcset = item.srcset;
  image.alt = "";
  image.draggable = false;
  image.dataset.imageId = item.image_id;
  cell.appendChild(image);
  return { cell, image };
}

export function mount(root, content, session) {
  const candidates = new Map(); // image id -> {cell, image, record}
  const grid = element("div", "candidate-grid");
  grid.setAttribute("role", "group");
  grid.setAttribute("aria-label", `Candidate images for ${content.category.name}`);
  let lastTraceTime = 0;

  content.items.forEach((item, i) => {
    const candidate = candidateCell(item, i, content.items.length);
    grid.appendChild(candidate.cell);
    candidates.set(item.image_id, { ...candidate, record: newRecord(item.image_id) });
  });

  root.append(classPanel(content.category), grid);
  let selectedCount = 0;

  function summarise() {
    session.setSummary(`${selectedCount} of ${content.items.length} selected`);
  }
  summarise();

  function candidateAt(target) {
    const image = target.closest ? target.closest("img.candidate-image") : null;
    return image ? candidates.get(image.dataset.imageId) : null;
  }

  function onClick(event) {
    const candidate = candidateAt(event.target);
    if (!candidate) return;
    const point = fractionIn(candidate.image, event.clientX, event.clientY);
    if (!point) return;
    session.record({
      type: "click", image_id: candidate.record.imageID, x: point.x, y: point.y, time: session.now(),
      selected: !candidate.record.selected,
    });
  }

  function onKey(event) {
    if ((event.key !== " " && event.key !== "Enter") || event.altKey || event.ctrlKey || event.metaKey) return;
    const cell = event.target.closest ? event.target.closest("figure.candidate") : null;
    const candidate = cell ? candidates.get(cell.dataset.imageId) : null;
    if (!candidate) return;
    event.preventDefault(); // Space would scroll the page
    if (event.repeat) return;
    const { record } = candidate;
    session.record({
      type: "click", image_id: record.imageID, time: session.now(), selected: !record.selected, usingKeyboard: true,
    });
  }

  function onHover(action) {
    return (event) => {
      const candidate = candidateAt(event.target);
      if (!candidate) return;
      // mouseover/mouseout bubble; only crossings of the image's own edge count.
      if (event.relatedTarget && candidate.image.contains(event.relatedTarget)) return;
      session.record({ type: "hover", image_id: candidate.record.imageID, action, time: session.now() });
    };
  }

  function onMove(event) {
    const time = session.now();
    if (time - lastTraceTime < MIN_TRACE_INTERVAL_MS) return;
    const candidate = candidateAt(event.target);
    if (!candidate) return;
    const point = fractionIn(candidate.image, event.clientX, event.clientY);
    if (!point) return;
    session.record({ type: "move", image_id: candidate.record.imageID, x: point.x, y: point.y, time });
  }

  const listeners = [
    ["click", onClick], ["mouseover", onHover("enter")], ["mouseout", onHover("leave")], ["mousemove", onMove],
    ["keydown", onKey],
  ];
  for (const [type, listener] of listeners) grid.addEventListener(type, listener);

  function apply(event) {
    const candidate = candidates.get(event.image_id);
    if (!candidate) return;
    const { record, cell } = candidate;
    selectedCount += applyToRecord(record, event);
    if (event.type === "click") {
      summarise();
      cell.classList.toggle("selected", record.selected);
      cell.setAttribute("aria-checked", String(record.selected));
    } else if (event.type === "move") {
      lastTraceTime = Math.max(lastTraceTime, event.time);
    }
  }

  function records() {
    const scroll = { x: window.scrollX, y: window.scrollY };
    return Array.from(candidates.values(), ({ image, record }) => (
      savedRecord(record, image.getBoundingClientRect(), scroll)
    ));
  }

  function canSave() {
    return { ok: true };
  }

  function destroy() {
    for (const [type, listener] of listeners) grid.removeEventListener(type, listener);
  }

  return { apply, records, canSave, destroy };
}
