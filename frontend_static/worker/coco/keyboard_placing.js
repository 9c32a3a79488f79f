// Placing an icon with the keyboard: a cursor on the image that the arrow keys move and Enter drops.
import { roundFraction } from "../../lib/dom.js";
import { addAction, moveAction } from "./state.js";

const KEY_STEP = 0.02; // fraction of the image per arrow key press (Shift: 5 times as far)
const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

/** "40% across, 60% down" for a point in fractions of the image. */
export function describePoint(point) {
  return `${Math.round(point.x * 100)}% across, ${Math.round(point.y * 100)}% down`;
}

export function isArrow(key) {
  return Object.hasOwn(ARROWS, key);
}

/** The cursor for a category: at its placed point `from`, or in the middle of the image for a new icon. */
export function startPlacing(category, from) {
  return { category, from, point: from ? { x: from.x, y: from.y } : { x: 0.5, y: 0.5 } };
}

/** The cursor one arrow key press further, kept on the image. */
export function moveCursor(placing, key, shiftKey) {
  const [dx, dy] = ARROWS[key];
  const step = shiftKey ? KEY_STEP * 5 : KEY_STEP;
  const clamp = (value) => Math.min(1, Math.max(0, value));
  return { ...placing, point: { x: clamp(placing.point.x + dx * step), y: clamp(placing.point.y + dy * step) } };
}

/**
 * The end of keyboard placing: dropped (`commit`) or cancelled. Returns the action to record (an add of an icon not
 * yet placed, a move of a placed one to another point; else null) and what to tell screen-reader users.
 */
export function finishPlacing(placing, placed, timeAt, commit) {
  const { category, from, point } = placing;
  const skipped = { action: null, announcement: `${category.name} not ${from === null ? "placed" : "moved"}.` };
  if (!commit) return skipped;
  const to = { x: roundFraction(point.x), y: roundFraction(point.y) };
  if (from === null && !placed.has(category.key)) {
    return {
      action: addAction(category.key, to, timeAt, true),
      announcement: `Placed ${category.name} at ${describePoint(to)}.`,
    };
  }
  if (from !== null && placed.has(category.key) && (to.x !== from.x || to.y !== from.y)) {
    return {
      action: moveAction(category.key, from, to, timeAt, true),
      announcement: `Moved ${category.name} to ${describePoint(to)}.`,
    };
  }
  return skipped;
}
