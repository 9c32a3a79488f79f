import assert from "node:assert/strict";
import { test } from "node:test";

import { applyToRecord, newRecord, savedRecord } from "../../../../frontend_static/worker/imagenet/record.js";

test("clicks toggle the selection and say how the selected count changes", () => {
  const record = newRecord("n01_1");
  assert.equal(applyToRecord(record, { type: "click", x: 0.1, y: 0.2, time: 10, selected: true }), 1);
  assert.equal(applyToRecord(record, { type: "click", x: 0.3, y: 0.4, time: 20, selected: true }), 0);
  assert.equal(applyToRecord(record, { type: "click", time: 30, selected: false, usingKeyboard: true }), -1);
  assert.equal(record.selected, false);
  assert.deepEqual(record.selectedRecord, [{ x: 0.1, y: 0.2, time: 10 }, { x: 0.3, y: 0.4, time: 20 }]);
  assert.deepEqual(record.deselectedRecord, [{ time: 30, usingKeyboard: true }]);
});

test("hovers and moves are appended as they came", () => {
  const record = newRecord("n01_1");
  assert.equal(applyToRecord(record, { type: "hover", action: "enter", time: 1 }), 0);
  applyToRecord(record, { type: "move", x: 0.5, y: 0.6, time: 2 });
  assert.deepEqual(record.hoveredRecord, [{ action: "enter", time: 1 }]);
  assert.deepEqual(record.mouseTracking, [{ x: 0.5, y: 0.6, time: 2 }]);
});

test("the saved record places the image on the page, scroll included", () => {
  const record = newRecord("n01_1");
  assert.deepEqual(savedRecord(record, { left: 10.4, top: 20.6, width: 150.5, height: 0 }, { x: 0, y: 300 }), {
    imageID: "n01_1", selected: false, selectedRecord: [], deselectedRecord: [], hoveredRecord: [], mouseTracking: [],
    imagePosition: { x: 10, y: 321 }, imageWidth: 151, imageHeight: 1,
  });
});
