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
 *
 * What the events mean is pure (state.js, keyboard_placing.js, histories.js); this module draws it and listens.
 */
import { element } from "../../lib/dom.js";
import { announcer } from "./announcer.js";
import { categoryBrowser } from "./category_browser.js";
import { containsPanel } from "./contains_panel.js";
import { followDrag } from "./drag.js";
import { addToHistories, newHistories, savedRecords } from "./histories.js";
import { describePoint, finishPlacing, isArrow, moveCursor, startPlacing } from "./keyboard_placing.js";
import { stage } from "./stage.js";
import {
  allGroupsBrowsed, dragAction, initialState, nextState, removeAction, saveVerdict, showGroupEvent, summary, traceDue,
} from "./state.js";

export function mount(root, content, session) {
  const groups = content.groups;
  const categories = new Map();
  for (const group of groups) {
    for (const category of group.categories) categories.set(category.key, category);
  }
  let state = initialState();
  const histories = newHistories();
  let placing = null; // the keyboard cursor: {category, from, point} (keyboard_placing.js)
  let returnFocus = null; // where focus goes back when keyboard placing ends without a placed icon
  const announcements = announcer();

  const view = stage(content.image, session.variant === "magnifier", (event, category, marker) => {
    const at = state.placed.get(category.key);
    if (at) startDrag(event, category, marker, at);
  });
  const browser = categoryBrowser((step) => showGroup(state.shownGroup + step, false), (event, category, tile) => {
    if (!state.placed.has(category.key)) startDrag(event, category, tile, null);
  });
  const contains = containsPanel((category) => {
    const at = state.placed.get(category.key);
    if (!at) return;
    session.record(removeAction(category.key, at, session.timeAt()));
    announcements.say(`Removed ${category.name}.`);
  });

  // Wide screens: the photo, with the browser and the list beside it; narrow ones: one column.
  const side = element("div", "coco-side");
  side.append(browser.root, contains.root);
  const layout = element("div", "coco-layout");
  layout.append(view.root, side);
  root.append(announcements.region, layout);

  function summarise() {
    session.setSummary(summary(state, groups));
  }

  function showPlaced() {
    view.showIcons(state.placed, categories);
    contains.show(state.placed, categories);
    browser.showPlaced(state.placed);
    summarise();
  }

  function showGroup(position, usingKeyboard) {
    session.record(showGroupEvent(groups, position, session.timeAt(), usingKeyboard));
  }

  function trace(clientX, clientY) {
    const timeAt = session.timeAt();
    if (!traceDue(state, timeAt)) return;
    const point = view.pointAt(clientX, clientY);
    if (point) session.record({ type: "track", x: point.x, y: point.y, timeAt });
  }

  /** One drag, from a browser tile (from === null) or a placed icon (from = its point). */
  function startDrag(event, category, source, from) {
    followDrag(event, category, source, {
      move(clientX, clientY) {
        view.showLens(clientX, clientY, view.pointAt(clientX, clientY));
        trace(clientX, clientY);
      },
      end(drop) {
        view.hideLens();
        if (!drop) return;
        const action = dragAction({
          key: category.key, from, to: view.pointAt(drop.clientX, drop.clientY), clicked: drop.clicked,
          placed: state.placed, timeAt: session.timeAt(),
        });
        if (action) session.record(action);
      },
    });
  }

  function startKeyboardPlacing(category, from, focusAfter) {
    placing = startPlacing(category, from);
    returnFocus = focusAfter;
    view.showCursor(category, placing.point);
    announcements.say(`${category.name} cursor at ${describePoint(placing.point)}.`);
    session.setMessage(`Arrow keys move the ${category.name} icon; Enter places it, Escape cancels.`);
  }

  function endKeyboardPlacing(commit) {
    const { category } = placing;
    const { action, announcement } = finishPlacing(placing, state.placed, session.timeAt(), commit);
    placing = null;
    view.hideCursor();
    session.setMessage("");
    if (action) session.record(action);
    announcements.say(announcement);
    const focusTarget = view.marker(category.key) || returnFocus;
    if (focusTarget && focusTarget.isConnected) focusTarget.focus();
  }

  /** Keys while the keyboard cursor is on the image: arrows move it, Enter / Space drop it, Escape cancels. */
  function onPlacingKey(event, activate) {
    event.preventDefault();
    if (isArrow(event.key)) {
      placing = moveCursor(placing, event.key, event.shiftKey);
      view.showCursor(placing.category, placing.point);
      announcements.sayLater(`Cursor at ${describePoint(placing.point)}.`);
    } else if (activate && !event.repeat) {
      endKeyboardPlacing(true);
    } else if (event.key === "Escape") {
      endKeyboardPlacing(false);
    }
  }

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    const activate = event.key === "Enter" || event.key === " ";
    if (placing) {
      onPlacingKey(event, activate);
      return;
    }
    const target = event.target;
    const tile = target.closest ? target.closest(".icon-tile") : null;
    const marker = target.closest ? target.closest(".placed-icon") : null;
    if (activate && tile && !event.repeat) {
      event.preventDefault();
      if (!state.placed.has(tile.dataset.key)) startKeyboardPlacing(categories.get(tile.dataset.key), null, tile);
      return;
    }
    const at = marker ? state.placed.get(marker.dataset.key) : undefined;
    if (at && activate && !event.repeat) {
      event.preventDefault();
      startKeyboardPlacing(categories.get(marker.dataset.key), at, marker);
      return;
    }
    if (at && (event.key === "Delete" || event.key === "Backspace")) {
      event.preventDefault();
      session.record(removeAction(marker.dataset.key, at, session.timeAt(), true));
      announcements.say(`Removed ${categories.get(marker.dataset.key).name}.`);
      return;
    }
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      showGroup(state.shownGroup + (event.key === "ArrowRight" ? 1 : -1), true);
    }
  }

  function onStageMove(event) {
    trace(event.clientX, event.clientY);
  }

  view.root.addEventListener("pointermove", onStageMove);
  document.addEventListener("keydown", onKey);
  browser.showGroup(groups[0], 0, groups.length, state.placed);
  showPlaced();

  function apply(event) {
    state = nextState(state, event, groups);
    addToHistories(histories, event);
    if (event.type === "action") {
      showPlaced();
    } else if (event.type === "category") {
      browser.showGroup(groups[state.shownGroup], state.shownGroup, groups.length, state.placed);
      if (allGroupsBrowsed(state, groups)) session.setMessage("");
      summarise();
    }
  }

  /** The first group counts as browsed once it is shown (unless a reload restored the history). */
  function ready() {
    if (!histories.categoryHistories.length) showGroup(0, false);
  }

  function records(timeSpent) {
    return savedRecords(content.image.image_id, view.image.getBoundingClientRect(), timeSpent, histories);
  }

  function canSave() {
    return saveVerdict(state, groups);
  }

  function destroy() {
    document.removeEventListener("keydown", onKey);
    announcements.stop();
    view.destroy();
  }

  return { apply, ready, records, canSave, destroy };
}
