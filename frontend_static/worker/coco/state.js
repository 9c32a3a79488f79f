// The COCO page's state as pure functions of the recorded events: which icons are where, which groups were
// shown; and the actions a drag or a remove makes of what the worker did.

export const MIN_TRACE_INTERVAL_MS = 17; // at most 60 samples a second

/** placed: category key -> {x, y} in fractions of the image, in the order the icons were first placed. */
export function initialState() {
  return { placed: new Map(), shownGroup: 0, browsed: new Set(), lastTraceAt: -Infinity };
}

/** The icons after one action (add, move, remove); the map given is left as it was. */
export function iconsAfter(placed, action) {
  const next = new Map(placed);
  if (action.actionType === "remove") next.delete(action.iconType);
  else next.set(action.iconType, { x: action.pointTo.x, y: action.pointTo.y });
  return next;
}

/** Position in `groups` of the group with this index (0 when there is none). */
export function groupPosition(groups, groupIndex) {
  const position = groups.findIndex((group) => group.index === groupIndex);
  return position < 0 ? 0 : position;
}

/** The state after one recorded event (action, category, track); the state given is left as it was. */
export function nextState(state, event, groups) {
  if (event.type === "action") return { ...state, placed: iconsAfter(state.placed, event) };
  if (event.type === "category") {
    return {
      ...state,
      browsed: new Set(state.browsed).add(event.categoryIndex),
      shownGroup: groupPosition(groups, event.categoryIndex),
    };
  }
  if (event.type === "track") return { ...state, lastTraceAt: Math.max(state.lastTraceAt, event.timeAt) };
  return state;
}

/** Whether a pointer sample at timeAt is kept (the trace is thinned to one sample per 17 ms). */
export function traceDue(state, timeAt) {
  return timeAt - state.lastTraceAt >= MIN_TRACE_INTERVAL_MS;
}

/** The category event that shows the group at `position` (wrapping around at both ends). */
export function showGroupEvent(groups, position, timeAt, usingKeyboard) {
  const group = groups[(position + groups.length) % groups.length];
  return { type: "category", categoryIndex: group.index, categoryName: group.name, timeAt, usingKeyboard };
}

export function allGroupsBrowsed(state, groups) {
  return state.browsed.size >= groups.length;
}

/** A page can be saved only once every group was shown. */
export function saveVerdict(state, groups) {
  if (allGroupsBrowsed(state, groups)) return { ok: true };
  const seen = state.browsed.size;
  return { ok: false, message: `Browse all ${groups.length} groups first: you have seen ${seen} of ${groups.length}.` };
}

export function summary(state, groups) {
  return `${state.placed.size} tagged \u00B7 groups seen ${state.browsed.size}/${groups.length}`;
}

export function addAction(key, to, timeAt, usingKeyboard) {
  return withKeyboard({ type: "action", actionType: "add", iconType: key, pointFrom: null, pointTo: to, timeAt },
    usingKeyboard);
}

export function moveAction(key, from, to, timeAt, usingKeyboard) {
  return withKeyboard({
    type: "action", actionType: "move", iconType: key, pointFrom: { x: from.x, y: from.y }, pointTo: to, timeAt,
  }, usingKeyboard);
}

export function removeAction(key, from, timeAt, usingKeyboard) {
  return withKeyboard({
    type: "action", actionType: "remove", iconType: key, pointFrom: { x: from.x, y: from.y }, timeAt,
  }, usingKeyboard);
}

function withKeyboard(action, usingKeyboard) {
  if (usingKeyboard) action.usingKeyboard = true;
  return action;
}

/**
 * The action a finished drag makes, or null: from a browser tile (from === null) dropped on the image (`to`, a
 * point or null when off the image) = add, unless the icon is already placed; a placed icon dropped elsewhere on
 * the image = move, off it = remove; a press that hardly moved (`clicked`) = nothing.
 */
export function dragAction({ key, from, to, clicked, placed, timeAt }) {
  if (from === null) return to && !placed.has(key) ? addAction(key, to, timeAt) : null;
  if (clicked) return null;
  return to ? moveAction(key, from, to, timeAt) : removeAction(key, from, timeAt);
}
