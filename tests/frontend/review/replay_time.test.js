import assert from "node:assert/strict";
import { test } from "node:test";

import {
  clicksOf, cocoDuration, finite, hoveredMs, imagenetTimeline, lastBefore, seconds, selectedAt,
} from "../../../frontend_static/review/replay_time.js";

test("seconds with one decimal", () => {
  assert.equal(seconds(1234), "1.2 s");
});

test("finite points only", () => {
  assert.equal(finite({ x: 0, y: 1 }), true);
  assert.equal(finite({ x: null, y: 1 }), false);
  assert.equal(finite(null), false);
});

test("hover time counts enter..leave pairs up to t, an open one up to t", () => {
  const hovered = [
    { action: "enter", time: 100 }, { action: "leave", time: 300 }, { action: "enter", time: 500 },
  ];
  assert.equal(hoveredMs(hovered, 250), 150);
  assert.equal(hoveredMs(hovered, 600), 300);
  assert.equal(hoveredMs(hovered, Infinity), 200);
});

test("the pointer's last finite position by t", () => {
  const trace = [{ x: 0.1, y: 0.1, t: 1 }, { x: NaN, y: 0, t: 2 }, { x: 0.3, y: 0.3, t: 5 }];
  assert.equal(lastBefore(trace, 4, (p) => p.t), trace[0]);
  assert.equal(lastBefore(trace, 0, (p) => p.t), null);
});

test("an ImageNet item's selection follows its clicks in time", () => {
  const clicks = clicksOf({
    selected_record: [{ x: 0.1, y: 0.1, time: 10 }, { x: 0.2, y: 0.2, time: 30 }],
    deselected_record: [{ x: 0.1, y: 0.1, time: 20 }],
  });
  assert.deepEqual(clicks.map((c) => [c.time, c.selected]), [[10, true], [20, false], [30, true]]);
  assert.deepEqual([5, 15, 25, 35].map((t) => selectedAt(clicks, t)), [false, true, false, true]);
});

test("an ImageNet page's clock runs from its first to its last recorded event", () => {
  const page = { items: [
    { selected_record: [{ time: 1500 }], mouse_tracking: [{ time: 1000 }] },
    { hovered_record: [{ time: 4000 }], deselected_record: [{ time: null }] },
  ] };
  assert.deepEqual(imagenetTimeline(page), { start: 1000, duration: 3000 });
  assert.deepEqual(imagenetTimeline({ items: [] }), { start: 0, duration: 0 });
});

test("a COCO page lasts its time spent, or up to its last event", () => {
  assert.equal(cocoDuration({ time_spent_ms: 9000, action_histories: [{ timeAt: 500 }] }), 9000);
  assert.equal(cocoDuration({ action_histories: [{ timeAt: 500 }], mouse_tracking: [{ timeAt: 700 }] }), 700);
  assert.equal(cocoDuration({}), 0);
});
