import assert from "node:assert/strict";
import { test } from "node:test";

import { addToHistories, newHistories, savedRecords } from "../../../../frontend_static/worker/coco/histories.js";

test("events become the published history entries", () => {
  const histories = newHistories();
  for (const event of [
    { type: "action", actionType: "add", iconType: "cat", pointFrom: null, pointTo: { x: 0.1, y: 0.2 }, timeAt: 5 },
    { type: "action", actionType: "remove", iconType: "cat", pointFrom: { x: 0.1, y: 0.2 }, timeAt: 9,
      usingKeyboard: true },
    { type: "category", categoryIndex: 3, categoryName: "animal", timeAt: 1, usingKeyboard: false },
    { type: "track", x: 0.5, y: 0.5, timeAt: 7 },
    { type: "visibility", state: "hidden", time: 1 },
  ]) addToHistories(histories, event);
  assert.deepEqual(histories, {
    actionHistories: [
      { actionType: "add", iconType: "cat", pointFrom: null, pointTo: { x: 0.1, y: 0.2 }, timeAt: 5 },
      { actionType: "remove", iconType: "cat", pointFrom: { x: 0.1, y: 0.2 }, timeAt: 9, usingKeyboard: true },
    ],
    categoryHistories: [{ categoryIndex: 3, categoryName: "animal", timeAt: 1, usingKeyboard: false }],
    mouseTracking: [{ x: 0.5, y: 0.5, timeAt: 7 }],
  });
  assert.deepEqual(Object.keys(histories.actionHistories[0]), ["actionType", "iconType", "pointFrom", "pointTo", "timeAt"]);
});

test("the saved record has the displayed size in whole pixels, at least 1", () => {
  const histories = newHistories();
  assert.deepEqual(savedRecords("img-1", { width: 800.4, height: 0.2 }, 1234, histories), [{
    image_id: "img-1", imageWidth: 800, imageHeight: 1, timeSpent: 1234, ...histories,
  }]);
});
