/*
 * COCO-style page: one image, the category browser (groups one at a time: buttons or Left/Right keys), and icons
 * dragged with pointer events (mouse, pen, touch): onto the image = add, a placed icon elsewhere = move, off the
 * image or its remove control = remove. One icon per category. Records actionHistories, categoryHistories and
 * mouseTracking with timeAt in ms since the page was shown.
 * Keyboard: Enter / Space on a browser icon (or on a placed one) shows a cursor on the image; the arrow keys move it
 * (Shift: larger steps), Enter / Space drops the icon there (one add or move action with usingKeyboard: the point
 * is the worker's own choice), Escape cancels; Delete / Backspace on a placed icon removes it. A polite live
 * region tells screen-reader users where the cursor is (once the arrow keys rest) and what was placed, moved or
 * removed.
 */
(function () {
  "use strict";

  const MIN_TRACE_INTERVAL_MS = 17; // at most 60 samples a second
  const MAGNIFICATION = 2;
  const LENS_SIZE = 140;
  const CLICK_SLOP_PX = 4; // a press that moves less than this is a click, not a drag
  const KEY_STEP = 0.02; // fraction of the image per arrow key press (Shift: 5 times as far)
  const CURSOR_ANNOUNCE_DELAY_MS = 500; // a held arrow key is announced once it rests, not at every step

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** "40% across, 60% down" for a point in fractions of the image. */
  function describePoint(point) {
    return `${Math.round(point.x * 100)}% across, ${Math.round(point.y * 100)}% down`;
  }

  /** A visually hidden polite live region; say() replaces what it says, sayLater() waits until calls rest. */
  function announcer() {
    const region = element("p", "visually-hidden coco-announcer");
    region.setAttribute("aria-live", "polite");
    let pending = null;
    function say(text) {
      clearTimeout(pending);
      region.textContent = text;
    }
    function sayLater(text) {
      clearTimeout(pending);
      pending = setTimeout(() => say(text), CURSOR_ANNOUNCE_DELAY_MS);
    }
    return { region, say, sayLater, stop: () => clearTimeout(pending) };
  }

  /** The category's icon, drawn by the server (GET pages/<i> gives its URL): a tile with the category name. */
  function categoryIcon(category, size) {
    const icon = element("img", "category-icon");
    icon.src = category.icon;
    icon.alt = category.name;
    icon.width = size;
    icon.height = size;
    icon.draggable = false;
    return icon;
  }

  function mount(root, content, session) {
    const groups = content.groups;
    const categories = new Map();
    for (const group of groups) {
      for (const category of group.categories) categories.set(category.key, category);
    }
    const placed = new Map(); // category key -> {x, y, marker}
    const actionHistories = [];
    const categoryHistories = [];
    const mouseTracking = [];
    const browsedGroups = new Set();
    let shownGroup = 0;
    let lastTraceAt = -Infinity;

    // The image and what is placed on it.
    const stage = element("div", "coco-stage");
    const image = element("img", "coco-image");
    image.src = content.image.url;
    if (content.image.srcset) image.srcset = content.image.srcset;
    image.style.setProperty("--aspect", content.image.width / content.image.height);
    image.alt = "";
    image.draggable = false;
    const markers = element("div", "coco-markers");
    const keyCursor = element("div", "keyboard-cursor");
    keyCursor.hidden = true;
    markers.appendChild(keyCursor);
    stage.append(image, markers);
    let keyboardPlacing = null; // {category, from: null | {x, y}, point: {x, y}, returnFocus}
    const announcements = announcer();

    const containsPanel = element("section", "contains-panel");
    containsPanel.appendChild(element("h2", "", "This image contains"));
    const containsList = element("ul", "contains-list");
    const containsEmpty = element("p", "contains-empty", "Nothing yet: drag icons onto the objects.");
    containsPanel.append(containsList, containsEmpty);

    // The category browser.
    const browser = element("section", "category-browser");
    const previousButton = element("button", "group-previous", "\u25C0 Previous");
    previousButton.type = "button";
    const nextButton = element("button", "group-next", "Next \u25B6");
    nextButton.type = "button";
    const groupName = element("span", "group-name");
    const groupIndicator = element("span", "group-indicator");
    const browserHeader = element("div", "browser-header");
    browserHeader.append(previousButton, groupName, groupIndicator, nextButton);
    const iconRow = element("div", "icon-row");
    browser.append(browserHeader, iconRow);

    // Wide screens: the photo, with the browser and the list beside it; narrow ones: one column.
    const side = element("div", "coco-side");
    side.append(browser, containsPanel);
    const layout = element("div", "coco-layout");
    layout.append(stage, side);
    root.append(announcements.region, layout);

    const lens = element("div", "magnifier");
    lens.hidden = true;
    document.body.appendChild(lens);

    function pointOnImage(clientX, clientY) {
      return LUAB.fractionIn(image, clientX, clientY);
    }

    function renderGroup() {
      const group = groups[shownGroup];
      groupName.textContent = group.name;
      groupIndicator.textContent = `${shownGroup + 1} / ${groups.length}`;
      iconRow.textContent = "";
      for (const category of group.categories) {
        const tile = element("div", "icon-tile");
        tile.dataset.key = category.key;
        tile.title = category.name;
        tile.tabIndex = 0;
        tile.setAttribute("role", "button");
        tile.setAttribute("aria-label", `Place ${category.name} on the image`);
        tile.append(categoryIcon(category, 56), element("span", "icon-caption", category.name));
        tile.classList.toggle("placed", placed.has(category.key));
        tile.setAttribute("aria-disabled", String(placed.has(category.key)));
        tile.addEventListener("pointerdown", (event) => {
          if (!placed.has(category.key)) startDrag(event, category, tile, null);
        });
        iconRow.appendChild(tile);
      }
    }

    function summarise() {
      session.setSummary(`${placed.size} tagged \u00B7 groups seen ${browsedGroups.size}/${groups.length}`);
    }

    function renderContains() {
      containsList.textContent = "";
      for (const key of placed.keys()) {
        const category = categories.get(key);
        const entry = element("li", "contains-entry");
        entry.dataset.key = key;
        const remove = element("button", "remove-icon", "\u00D7");
        remove.type = "button";
        remove.title = `Remove ${category.name}`;
        remove.setAttribute("aria-label", `Remove ${category.name}`);
        remove.addEventListener("click", () => {
          const at = placed.get(key);
          if (!at) return;
          session.record(removeAction(key, at));
          announcements.say(`Removed ${category.name}.`);
        });
        entry.append(categoryIcon(category, 28), element("span", "", category.name), remove);
        containsList.appendChild(entry);
      }
      containsEmpty.hidden = placed.size > 0;
      summarise();
      for (const tile of iconRow.children) {
        tile.classList.toggle("placed", placed.has(tile.dataset.key));
        tile.setAttribute("aria-disabled", String(placed.has(tile.dataset.key)));
      }
    }

    function placeMarker(key, point) {
      let entry = placed.get(key);
      if (!entry) {
        const category = categories.get(key);
        const marker = element("div", "placed-icon");
        marker.dataset.key = key;
        marker.title = category.name;
        marker.tabIndex = 0;
        marker.setAttribute("role", "button");
        marker.setAttribute("aria-label", `${category.name} on the image: Enter to move it, Delete to remove it`);
        marker.append(categoryIcon(category, 36), element("span", "placed-name", category.name));
        marker.addEventListener("pointerdown", (event) => {
          const at = placed.get(key);
          if (at) startDrag(event, category, marker, at);
        });
        markers.appendChild(marker);
        entry = { marker };
        placed.set(key, entry);
      }
      entry.x = point.x;
      entry.y = point.y;
      entry.marker.style.left = `${point.x * 100}%`;
      entry.marker.style.top = `${point.y * 100}%`;
    }

    function removeAction(key, from, usingKeyboard) {
      const action = {
        type: "action", actionType: "remove", iconType: key, pointFrom: { x: from.x, y: from.y },
        timeAt: session.timeAt(),
      };
      if (usingKeyboard) action.usingKeyboard = true;
      return action;
    }

    function showKeyCursor() {
      const { category, point } = keyboardPlacing;
      keyCursor.textContent = "";
      keyCursor.append(categoryIcon(category, 36));
      keyCursor.style.left = `${point.x * 100}%`;
      keyCursor.style.top = `${point.y * 100}%`;
      keyCursor.hidden = false;
    }

    function startKeyboardPlacing(category, from, returnFocus) {
      const start = from ? { x: from.x, y: from.y } : { x: 0.5, y: 0.5 };
      keyboardPlacing = { category, from, point: start, returnFocus };
      showKeyCursor();
      announcements.say(`${category.name} cursor at ${describePoint(start)}.`);
      session.setMessage(`Arrow keys move the ${category.name} icon; Enter places it, Escape cancels.`);
    }

    function endKeyboardPlacing(commit) {
      const { category, from, point, returnFocus } = keyboardPlacing;
      keyboardPlacing = null;
      keyCursor.hidden = true;
      session.setMessage("");
      let announcement = `${category.name} not ${from === null ? "placed" : "moved"}.`;
      if (commit) {
        const to = { x: Math.round(point.x * 10000) / 10000, y: Math.round(point.y * 10000) / 10000 };
        const base = { type: "action", iconType: category.key, timeAt: session.timeAt(), usingKeyboard: true };
        if (from === null && !placed.has(category.key)) {
          session.record({ ...base, actionType: "add", pointFrom: null, pointTo: to });
          announcement = `Placed ${category.name} at ${describePoint(to)}.`;
        } else if (from !== null && placed.has(category.key) && (to.x !== from.x || to.y !== from.y)) {
          session.record({ ...base, actionType: "move", pointFrom: { x: from.x, y: from.y }, pointTo: to });
          announcement = `Moved ${category.name} to ${describePoint(to)}.`;
        }
      }
      announcements.say(announcement);
      const marker = placed.get(category.key);
      const focusTarget = marker ? marker.marker : returnFocus;
      if (focusTarget && focusTarget.isConnected) focusTarget.focus();
    }

    function showGroup(index, usingKeyboard) {
      const wrapped = (index + groups.length) % groups.length;
      session.record({
        type: "category", categoryIndex: groups[wrapped].index, categoryName: groups[wrapped].name,
        timeAt: session.timeAt(), usingKeyboard,
      });
    }

    function groupPosition(groupIndex) {
      const position = groups.findIndex((group) => group.index === groupIndex);
      return position < 0 ? 0 : position;
    }

    function updateLens(clientX, clientY, point) {
      if (session.variant !== "magnifier" || !point) {
        lens.hidden = true;
        return;
      }
      const box = image.getBoundingClientRect();
      lens.hidden = false;
      lens.style.backgroundImage = `url("${image.src}")`;
      lens.style.backgroundSize = `${box.width * MAGNIFICATION}px ${box.height * MAGNIFICATION}px`;
      const offsetX = LENS_SIZE / 2 - point.x * box.width * MAGNIFICATION;
      const offsetY = LENS_SIZE / 2 - point.y * box.height * MAGNIFICATION;
      lens.style.backgroundPosition = `${offsetX}px ${offsetY}px`;
      lens.style.left = `${clientX - LENS_SIZE / 2}px`;
      lens.style.top = `${clientY - LENS_SIZE - 30}px`;
    }

    function trace(clientX, clientY) {
      const timeAt = session.timeAt();
      if (timeAt - lastTraceAt < MIN_TRACE_INTERVAL_MS) return;
      const point = pointOnImage(clientX, clientY);
      if (point) session.record({ type: "track", x: point.x, y: point.y, timeAt });
    }

    /** One drag, from a browser tile (from === null) or a placed icon (from = its point). */
    function startDrag(event, category, source, from) {
      if (event.button !== undefined && event.button > 0) return;
      event.preventDefault();
      source.setPointerCapture(event.pointerId);
      const pressedAt = { x: event.clientX, y: event.clientY };
      const ghost = element("div", "drag-ghost");
      ghost.appendChild(categoryIcon(category, 48));
      document.body.appendChild(ghost);
      source.classList.add("dragging");

      function follow(moveEvent) {
        ghost.style.left = `${moveEvent.clientX}px`;
        ghost.style.top = `${moveEvent.clientY}px`;
        updateLens(moveEvent.clientX, moveEvent.clientY, pointOnImage(moveEvent.clientX, moveEvent.clientY));
        trace(moveEvent.clientX, moveEvent.clientY);
      }

      function end(endEvent) {
        for (const type of ["pointermove", "pointerup", "pointercancel", "lostpointercapture"]) {
          source.removeEventListener(type, type === "pointermove" ? follow : end);
        }
        ghost.remove();
        lens.hidden = true;
        source.classList.remove("dragging");
        // Cancelled, or the source left the page mid-drag (the group changed): nothing happened.
        if (endEvent.type !== "pointerup") return;
        const to = pointOnImage(endEvent.clientX, endEvent.clientY);
        const key = category.key;
        if (from === null) {
          if (to && !placed.has(key)) {
            session.record({
              type: "action", actionType: "add", iconType: key, pointFrom: null, pointTo: to, timeAt: session.timeAt(),
            });
          }
        } else if (Math.hypot(endEvent.clientX - pressedAt.x, endEvent.clientY - pressedAt.y) < CLICK_SLOP_PX) {
          return;
        } else if (!to) {
          session.record(removeAction(key, from));
        } else {
          session.record({
            type: "action", actionType: "move", iconType: key, pointFrom: { x: from.x, y: from.y }, pointTo: to,
            timeAt: session.timeAt(),
          });
        }
      }

      source.addEventListener("pointermove", follow);
      for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) source.addEventListener(type, end);
      follow(event);
    }

    function onStageMove(event) {
      trace(event.clientX, event.clientY);
    }

    const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

    function onKey(event) {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
      const activate = event.key === "Enter" || event.key === " ";
      if (keyboardPlacing) {
        event.preventDefault();
        if (ARROWS[event.key]) {
          const [dx, dy] = ARROWS[event.key];
          const step = event.shiftKey ? KEY_STEP * 5 : KEY_STEP;
          const point = keyboardPlacing.point;
          point.x = Math.min(1, Math.max(0, point.x + dx * step));
          point.y = Math.min(1, Math.max(0, point.y + dy * step));
          showKeyCursor();
          announcements.sayLater(`Cursor at ${describePoint(point)}.`);
        } else if (activate && !event.repeat) {
          endKeyboardPlacing(true);
        } else if (event.key === "Escape") {
          endKeyboardPlacing(false);
        }
        return;
      }
      const target = event.target;
      const tile = target.closest ? target.closest(".icon-tile") : null;
      const marker = target.closest ? target.closest(".placed-icon") : null;
      if (activate && tile && !event.repeat) {
        event.preventDefault();
        if (!placed.has(tile.dataset.key)) startKeyboardPlacing(categories.get(tile.dataset.key), null, tile);
        return;
      }
      if (marker && placed.has(marker.dataset.key)) {
        const at = placed.get(marker.dataset.key);
        if (activate && !event.repeat) {
          event.preventDefault();
          startKeyboardPlacing(categories.get(marker.dataset.key), { x: at.x, y: at.y }, marker);
          return;
        }
        if (event.key === "Delete" || event.key === "Backspace") {
          event.preventDefault();
          session.record(removeAction(marker.dataset.key, at, true));
          announcements.say(`Removed ${categories.get(marker.dataset.key).name}.`);
          return;
        }
      }
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        event.preventDefault();
        showGroup(shownGroup + (event.key === "ArrowRight" ? 1 : -1), true);
      }
    }

    previousButton.addEventListener("click", () => showGroup(shownGroup - 1, false));
    nextButton.addEventListener("click", () => showGroup(shownGroup + 1, false));
    stage.addEventListener("pointermove", onStageMove);
    document.addEventListener("keydown", onKey);
    renderGroup();
    renderContains();

    function apply(event) {
      if (event.type === "action") {
        const entry = { actionType: event.actionType, iconType: event.iconType, pointFrom: event.pointFrom };
        if (event.actionType !== "remove") entry.pointTo = event.pointTo;
        entry.timeAt = event.timeAt;
        if (event.usingKeyboard) entry.usingKeyboard = true;
        actionHistories.push(entry);
        if (event.actionType === "remove") {
          const removed = placed.get(event.iconType);
          if (removed) removed.marker.remove();
          placed.delete(event.iconType);
        } else {
          placeMarker(event.iconType, event.pointTo);
        }
        renderContains();
      } else if (event.type === "category") {
        categoryHistories.push({
          categoryIndex: event.categoryIndex, categoryName: event.categoryName, timeAt: event.timeAt,
          usingKeyboard: event.usingKeyboard,
        });
        browsedGroups.add(event.categoryIndex);
        shownGroup = groupPosition(event.categoryIndex);
        const browsingByKeyboard = iconRow.contains(document.activeElement);
        renderGroup();
        // The focused tile was redrawn away: keep the keyboard user in the browser, on the new group's first icon.
        if (browsingByKeyboard && iconRow.firstElementChild) iconRow.firstElementChild.focus();
        if (browsedGroups.size >= groups.length) session.setMessage("");
        summarise();
      } else if (event.type === "track") {
        mouseTracking.push({ x: event.x, y: event.y, timeAt: event.timeAt });
        lastTraceAt = Math.max(lastTraceAt, event.timeAt);
      }
    }

    /** The first group counts as browsed once it is shown (unless a reload restored the history). */
    function ready() {
      if (!categoryHistories.length) showGroup(0, false);
    }

    function records(timeSpent) {
      const box = image.getBoundingClientRect();
      return [{
        image_id: content.image.image_id,
        imageWidth: Math.max(1, Math.round(box.width)),
        imageHeight: Math.max(1, Math.round(box.height)),
        timeSpent,
        actionHistories,
        categoryHistories,
        mouseTracking,
      }];
    }

    function canSave() {
      if (browsedGroups.size >= groups.length) return { ok: true };
      return {
        ok: false,
        message: `Browse all ${groups.length} groups first: you have seen ${browsedGroups.size} of ${groups.length}.`,
      };
    }

    function destroy() {
      document.removeEventListener("keydown", onKey);
      announcements.stop();
      lens.remove();
    }

    return { apply, ready, records, canSave, destroy };
  }

  LUAB.registerKind("coco", { mount });
})();
