import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addAction, dragAction, iconsAfter, initialState, moveAction, nextState, removeAction, saveVerdict, showGroupEvent,
  summary, traceDue,
} from "../../../../frontend_static/worker/coco/state.js";

const GROUPS = [
  { index: 3, name: "animal", categories: [{ key: "cat" }, { key: "dog" }] },
  { index: 7, name: "vehicle", categories: [{ key: "car" }] },
];

function run(events) {
  return events.reduce((state, event) => nextState(state, event, GROUPS), initialState());
}

test("add, move and remove place one icon per category, in the order first placed", () => {
  const state = run([
    addAction("dog", { x: 0.1, y: 0.2 }, 10),
    addAction("cat", { x: 0.3, y: 0.4 }, 20),
    moveAction("dog", { x: 0.1, y: 0.2 }, { x: 0.5, y: 0.6 }, 30),
  ]);
  assert.deepEqual([...state.placed], [["dog", { x: 0.5, y: 0.6 }], ["cat", { x: 0.3, y: 0.4 }]]);
  const removed = nextState(state, removeAction("dog", { x: 0.5, y: 0.6 }, 40), GROUPS);
  assert.deepEqual([...removed.placed.keys()], ["cat"]);
  assert.deepEqual([...state.placed.keys()], ["dog", "cat"], "the earlier state was changed");
});

test("iconsAfter returns a new map and leaves the given one", () => {
  const placed = new Map([["cat", { x: 0, y: 0 }]]);
  const next = iconsAfter(placed, addAction("car", { x: 1, y: 1 }, 0));
  assert.notEqual(next, placed);
  assert.equal(placed.size, 1);
  assert.equal(next.size, 2);
});

test("category events count the groups browsed and say which one is shown", () => {
  const state = run([showGroupEvent(GROUPS, 1, 5, false), showGroupEvent(GROUPS, 2, 6, true)]);
  assert.equal(state.shownGroup, 0);
  assert.deepEqual([...state.browsed], [7, 3]);
  assert.deepEqual(saveVerdict(state, GROUPS), { ok: true });
  assert.equal(summary(state, GROUPS), "0 tagged \u00B7 groups seen 2/2");
});

test("showing a group wraps around at both ends", () => {
  assert.deepEqual(showGroupEvent(GROUPS, -1, 9, true), {
    type: "category", categoryIndex: 7, categoryName: "vehicle", timeAt: 9, usingKeyboard: true,
  });
  assert.equal(showGroupEvent(GROUPS, 2, 9, false).categoryIndex, 3);
});

test("a page cannot be saved before every group was shown", () => {
  const state = run([showGroupEvent(GROUPS, 0, 1, false)]);
  assert.deepEqual(saveVerdict(state, GROUPS), {
    ok: false, message: "Browse all 2 groups first: you have seen 1 of 2.",
  });
});

test("the trace keeps at most one sample per 17 ms", () => {
  const state = run([{ type: "track", x: 0, y: 0, timeAt: 100 }]);
  assert.equal(traceDue(initialState(), 0), true);
  assert.equal(traceDue(state, 116), false);
  assert.equal(traceDue(state, 117), true);
});

test("keyboard actions say so; pointer actions do not", () => {
  assert.equal(removeAction("cat", { x: 0, y: 0 }, 1, true).usingKeyboard, true);
  assert.equal("usingKeyboard" in removeAction("cat", { x: 0, y: 0 }, 1), false);
  assert.deepEqual(addAction("cat", { x: 0.5, y: 0.5 }, 3), {
    type: "action", actionType: "add", iconType: "cat", pointFrom: null, pointTo: { x: 0.5, y: 0.5 }, timeAt: 3,
  });
});

test("a drag from the browser onto the image adds the icon, unless it is already placed or dropped off it", () => {
  const placed = new Map([["dog", { x: 0.1, y: 0.1 }]]);
  const drop = { from: null, clicked: false, placed, timeAt: 50 };
  assert.equal(dragAction({ ...drop, key: "cat", to: { x: 0.2, y: 0.3 } }).actionType, "add");
  assert.equal(dragAction({ ...drop, key: "dog", to: { x: 0.2, y: 0.3 } }), null);
  assert.equal(dragAction({ ...drop, key: "cat", to: null }), null);
});

test("a placed icon dragged on the image moves, off it is removed, a mere click does nothing", () => {
  const from = { x: 0.1, y: 0.1 };
  const drag = { key: "dog", from, placed: new Map([["dog", from]]), timeAt: 60 };
  assert.deepEqual(dragAction({ ...drag, to: { x: 0.4, y: 0.4 }, clicked: false }), {
    type: "action", actionType: "move", iconType: "dog", pointFrom: from, pointTo: { x: 0.4, y: 0.4 }, timeAt: 60,
  });
  assert.equal(dragAction({ ...drag, to: null, clicked: false }).actionType, "remove");
  assert.equal(dragAction({ ...drag, to: null, clicked: true }), null);
});
