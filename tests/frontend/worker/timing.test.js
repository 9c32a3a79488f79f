import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { configureTiming, retryDelay, timing } from "../../../frontend_static/worker/timing.js";

const defaults = { ...timing };
afterEach(() => Object.assign(timing, defaults));

test("retries back off from 1 s, doubling, to at most 30 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((attempt) => retryDelay(attempt, NaN)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test("a Retry-After may lengthen the wait, never shorten it", () => {
  assert.equal(retryDelay(0, 5), 5000);
  assert.equal(retryDelay(3, 2), 8000);
  assert.equal(retryDelay(0, 0), 1000);
});

test("the page config sets the timings; missing or non-positive values keep the defaults", () => {
  configureTiming({ flush_interval_ms: 500, retry_first_delay_ms: "50", retry_max_delay_ms: 0 });
  assert.deepEqual(timing, { flushIntervalMs: 500, retryFirstDelayMs: 50, retryMaxDelayMs: 30000 });
  configureTiming(null);
  assert.equal(timing.flushIntervalMs, 500);
  assert.equal(retryDelay(2, NaN), 200);
});
