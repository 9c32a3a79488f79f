import assert from "node:assert/strict";
import { test } from "node:test";

import { Clock, inferPageStart, maxEventTime, maxTimeAt } from "../../../frontend_static/worker/clock.js";

test("the clock never goes backwards, even when the wall clock does", () => {
  let wall = 1000;
  const clock = new Clock(() => wall);
  assert.equal(clock.now(), 1000);
  wall = 900;
  assert.equal(clock.now(), 1000);
  wall = 1200;
  assert.equal(clock.now(), 1200);
});

test("notBefore moves the clock on to saved times, never back", () => {
  const clock = new Clock(() => 1000);
  clock.notBefore(5000);
  assert.equal(clock.now(), 5000);
  clock.notBefore(2000);
  assert.equal(clock.now(), 5000);
});

test("the latest times of saved events: epoch time and page-relative timeAt", () => {
  const events = [{ time: 30 }, { timeAt: 7 }, { time: 10, timeAt: 3 }, { type: "other" }];
  assert.equal(maxEventTime(events), 30);
  assert.equal(maxTimeAt(events), 7);
  assert.equal(maxEventTime([]), 0);
  assert.equal(maxTimeAt([]), -1);
});

test("a lost page start is placed so timeAt continues after the saved events", () => {
  assert.equal(inferPageStart([{ timeAt: 400 }, { timeAt: 900 }], 10_000), 10_000 - 900 - 1);
});

test("a lost page start falls back to the first saved epoch time, then to now", () => {
  assert.equal(inferPageStart([{ type: "x" }, { time: 5000 }, { time: 4000 }], 10_000), 5000);
  assert.equal(inferPageStart([], 10_000), 10_000);
});
