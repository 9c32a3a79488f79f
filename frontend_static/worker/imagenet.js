/*
 * ImageNet-style page: one class, its candidate images in a grid; a click toggles selection.
 * Per image it records clicks (selected / deselected, with the point as fractions of the displayed image),
 * hover enter/leave and the mouse trace (at most one sample per 17 ms per page), appending to plain arrays.
 * Keyboard: every candidate is a checkbox in the tab order; Space or Enter toggles it, recorded as a toggle with
 * usingKeyboard and no point (the worker pointed at nothing, so no point is made up).
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

  /** The link as an absolute http(s) URL, or null: a `javascript:` or `data:` link must never become clickable. */
  function webLink(href) {
    try {
      const url = new URL(String(href), document.baseURI);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (error) {
      return null;
    }
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
    const hrefs = (category.reference_links || []).map(webLink).filter(Boolean);
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

  function mount(root, content, session) {
    const recordsById = new Map();
    const grid = element("div", "candidate-grid");
    grid.setAttribute("role", "group");
    grid.setAttribute("aria-label", `Candidate images for ${content.category.name}`);
    let lastTraceTime = 0;

    content.items.forEach((item, i) => {
      const cell = element("figure", "candidate");
      cell.tabIndex = 0;
      cell.setAttribute("role", "checkbox");
      cell.setAttribute("aria-checked", "false");
      cell.setAttribute("aria-label", `Image ${i + 1} of ${content.items.length}`);
      cell.dataset.imageId = item.image_id;
      const image = element("img", "candidate-image");
      image.src = item.url;
      if (item.srcset) image.srcset = item.srcset;
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
    });

    root.append(classPanel(content.category), grid);
    let selectedCount = 0;

    function summarise() {
      session.setSummary(`${selectedCount} of ${content.items.length} selected`);
    }
    summarise();

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

    function onKey(event) {
      if ((event.key !== " " && event.key !== "Enter") || event.altKey || event.ctrlKey || event.metaKey) return;
      const cell = event.target.closest ? event.target.closest("figure.candidate") : null;
      const record = cell ? recordsById.get(cell.dataset.imageId) : null;
      if (!record) return;
      event.preventDefault(); // Space would scroll the page
      if (event.repeat) return;
      session.record({
        type: "click", image_id: record.imageID, time: session.now(), selected: !record.selected, usingKeyboard: true,
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
      ["keydown", onKey],
    ];
    for (const [type, listener] of listeners) grid.addEventListener(type, listener);

    function apply(event) {
      const record = recordsById.get(event.image_id);
      if (!record) return;
      if (event.type === "click") {
        const click = event.usingKeyboard
          ? { time: event.time, usingKeyboard: true }
          : { x: event.x, y: event.y, time: event.time };
        (event.selected ? record.selectedRecord : record.deselectedRecord).push(click);
        if (record.selected !== event.selected) selectedCount += event.selected ? 1 : -1;
        record.selected = event.selected;
        summarise();
        record.cell.classList.toggle("selected", event.selected);
        record.cell.setAttribute("aria-checked", String(event.selected));
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
