/*
 * ImageNet-style page: one class, its candidate images in a grid; a click toggles selection.
 * Per image it records clicks (selected / deselected, with the point as fractions of the displayed image),
 * hover enter/leave and the mouse trace (at most one sample per 17 ms per page), appending to plain arrays.
 */
(function () {
  "use strict";

  const MIN_TRACE_INTERVAL_MS = 17; // at most 60 samples a second, per page

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function classPanel(category) {
    const panel = element("section", "class-panel");
    const heading = element("h2", "class-name");
    heading.append("Select every image that contains: ", element("strong", "", category.name));
    panel.appendChild(heading);
    if (category.synonyms && category.synonyms.length) {
      panel.appendChild(element("p", "class-synonyms", `Also called: ${category.synonyms.join(", ")}`));
    }
    if (category.definition) panel.appendChild(element("p", "class-definition", category.definition));
    if (category.reference_links && category.reference_links.length) {
      const links = element("p", "class-links", "See: ");
      category.reference_links.forEach((href, i) => {
        const link = element("a", "", `example ${i + 1}`);
        link.href = href;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        links.append(link, " ");
      });
      panel.appendChild(links);
    }
    panel.appendChild(element(
      "p", "class-instructions",
      "Click ON the object itself (not the background) in every image that shows it. Click again to deselect.",
    ));
    return panel;
  }

  function mount(root, content, session) {
    const recordsById = new Map();
    const grid = element("div", "candidate-grid");
    let lastTraceTime = 0;

    for (const item of content.items) {
      const cell = element("figure", "candidate");
      const image = element("img", "candidate-image");
      image.src = item.url;
      image.alt = "";
      image.draggable = false;
      image.dataset.imageId = item.image_id;
      cell.appendChild(image);
      grid.appendChild(cell);
      recordsById.set(item.image_id, {
        image, cell,
        imageID: item.image_id,
        selected: false,
        selectedRecord: [],
        deselectedRecord: [],
        hoveredRecord: [],
        mouseTracking: [],
      });
    }

    root.append(classPanel(content.category), grid);

    function recordFor(target) {
      const image = target.closest ? target.closest("img.candidate-image") : null;
      return image ? recordsById.get(image.dataset.imageId) : null;
    }

    function onClick(event) {
      const record = recordFor(event.target);
      if (!record) return;
      const point = LUAB.fractionIn(record.image, event.clientX, event.clientY);
      if (!point) return;
      session.record({
        type: "click", image_id: record.imageID, x: point.x, y: point.y, time: session.now(),
        selected: !record.selected,
      });
    }

    function onHover(action) {
      return (event) => {
        const record = recordFor(event.target);
        if (!record) return;
        // mouseover/mouseout bubble; only crossings of the image's own edge count.
        if (event.relatedTarget && record.image.contains(event.relatedTarget)) return;
        session.record({ type: "hover", image_id: record.imageID, action, time: session.now() });
      };
    }

    function onMove(event) {
      const time = session.now();
      if (time - lastTraceTime < MIN_TRACE_INTERVAL_MS) return;
      const record = recordFor(event.target);
      if (!record) return;
      const point = LUAB.fractionIn(record.image, event.clientX, event.clientY);
      if (!point) return;
      session.record({ type: "move", image_id: record.imageID, x: point.x, y: point.y, time });
    }

    const listeners = [
      ["click", onClick], ["mouseover", onHover("enter")], ["mouseout", onHover("leave")], ["mousemove", onMove],
    ];
    for (const [type, listener] of listeners) grid.addEventListener(type, listener);

    function apply(event) {
      const record = recordsById.get(event.image_id);
      if (!record) return;
      if (event.type === "click") {
        const click = { x: event.x, y: event.y, time: event.time };
        (event.selected ? record.selectedRecord : record.deselectedRecord).push(click);
        record.selected = event.selected;
        record.cell.classList.toggle("selected", event.selected);
      } else if (event.type === "hover") {
        record.hoveredRecord.push({ action: event.action, time: event.time });
      } else if (event.type === "move") {
        record.mouseTracking.push({ x: event.x, y: event.y, time: event.time });
        lastTraceTime = Math.max(lastTraceTime, event.time);
      }
    }

    function records() {
      return Array.from(recordsById.values(), (record) => {
        const box = record.image.getBoundingClientRect();
        return {
          imageID: record.imageID,
          selected: record.selected,
          selectedRecord: record.selectedRecord,
          deselectedRecord: record.deselectedRecord,
          hoveredRecord: record.hoveredRecord,
          mouseTracking: record.mouseTracking,
          imagePosition: { x: Math.round(box.left + window.scrollX), y: Math.round(box.top + window.scrollY) },
          imageWidth: Math.max(1, Math.round(box.width)),
          imageHeight: Math.max(1, Math.round(box.height)),
        };
      });
    }

    function canSave() {
      return { ok: true };
    }

    function destroy() {
      for (const [type, listener] of listeners) grid.removeEventListener(type, listener);
    }

    return { apply, records, canSave, destroy };
  }

  LUAB.registerKind("imagenet", { mount });
})();
