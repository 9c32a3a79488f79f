import assert from "node:assert/strict";
import { test } from "node:test";

import {
  describePoint, finishPlacing, isArrow, moveCursor, startPlacing,
} from "../../../../frontend_static/worker/coco/keyboard_placing.js";

const CAT = { key: "cat", name: "cat" };

test("a new icon's cursor starts in the middle; a placed icon's at its point", () => {
  assert.deepEqual(startPlacing(CAT, null).point, { x: 0.5, y: 0.5 });
  assert.deepEqual(startPlacing(CAT, { x: 0.2, y: 0.9 }).point, { x: 0.2, y: 0.9 });
});

test("arrow keys move the cursor 2% (Shift: 10%), never off the image", () => {
  let placing = startPlacing(CAT, null);
  placing = moveCursor(placing, "ArrowRight", false);
  placing = moveCursor(placing, "ArrowUp", true);
  assert.ok(Math.abs(placing.point.x - 0.52) < 1e-9 && Math.abs(placing.point.y - 0.4) < 1e-9);
  for (let i = 0; i < 20; i += 1) placing = moveCursor(placing, "ArrowDown", true);
  assert.equal(placing.point.y, 1);
  assert.ok(isArrow("ArrowLeft") && !isArrow("Enter") && !isArrow("constructor"));
});

test("describePoint says where the cursor is in whole percent", () => {
  assert.equal(describePoint({ x: 0.404, y: 0.6 }), "40% across, 60% down");
});

test("dropping a new icon adds it at the rounded point, with usingKeyboard", () => {
  const placing = { ...startPlacing(CAT, null), point: { x: 0.123456, y: 0.5 } };
  assert.deepEqual(finishPlacing(placing, new Map(), 70, true), {
    action: {
      type: "action", actionType: "add", iconType: "cat", pointFrom: null, pointTo: { x: 0.1235, y: 0.5 }, timeAt: 70,
      usingKeyboard: true,
    },
    announcement: "Placed cat at 12% across, 50% down.",
  });
});

test("dropping a placed icon elsewhere moves it; at the same point nothing happens", () => {
  const from = { x: 0.2, y: 0.2 };
  const placed = new Map([["cat", from]]);
  const moved = finishPlacing(moveCursor(startPlacing(CAT, from), "ArrowDown", false), placed, 80, true);
  assert.equal(moved.action.actionType, "move");
  assert.deepEqual(moved.action.pointFrom, from);
  assert.equal(moved.announcement, "Moved cat to 20% across, 22% down.");
  assert.deepEqual(finishPlacing(startPlacing(CAT, from), placed, 80, true), {
    action: null, announcement: "cat not moved.",
  });
});

test("Escape, or an icon placed meanwhile, records nothing", () => {
  assert.deepEqual(finishPlacing(startPlacing(CAT, null), new Map(), 90, false), {
    action: null, announcement: "cat not placed.",
  });
  const placed = new Map([["cat", { x: 0.1, y: 0.1 }]]);
  assert.equal(finishPlacing(startPlacing(CAT, null), placed, 90, true).action, null);
});
