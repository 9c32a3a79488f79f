import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../../../frontend_static/worker/api.js";
import {
  flushBody, EventQueue, firstSeq, MAX_EVENTS_PER_FLUSH,
} from "../../../frontend_static/worker/event_queue.js";
import { Store } from "../../../frontend_static/worker/store.js";
import { MemoryStorage } from "../fakes.js";

/** The API as the queue sees it: `answer(path, body)` throws to refuse a request. */
function fakeApi(answer = () => {}) {
  return {
    sent: [],
    beacons: [],
    async request(method, path, body) {
      this.sent.push({ method, path, body });
      answer(path, body);
      return { status: 201, data: {} };
    },
    beacon(path, body) {
      this.beacons.push({ path, body });
    },
  };
}

function fakeStatus() {
  return { errors: [], error(text) { this.errors.push(text); } };
}

function newQueue(api, storage = new MemoryStorage()) {
  return new EventQueue(api, new Store("q:", () => storage), fakeStatus(), () => 42);
}

test("new flushes of a page start above the saved events, the stored counter and the outbox", () => {
  assert.equal(firstSeq(0, 0, null, []), 1);
  assert.equal(firstSeq(0, 5, null, []), 6);
  assert.equal(firstSeq(0, 5, 9, []), 9);
  assert.equal(firstSeq(0, 0, 2, [{ page: 0, seq: 7 }, { page: 1, seq: 20 }]), 8);
});

test("each cut makes one flush with the next seq; a flush sends them in order", async () => {
  const api = fakeApi();
  const queue = newQueue(api);
  queue.startPage(2, 3);
  queue.push({ type: "a" });
  queue.push({ type: "b" });
  queue.cut();
  queue.cut(); // nothing pending: no empty flush
  queue.push({ type: "c" });
  await queue.flush();
  assert.deepEqual(api.sent.map((request) => [request.path, request.body.seq, request.body.events.length]), [
    ["pages/2/events", 4, 2], ["pages/2/events", 5, 1],
  ]);
  assert.deepEqual(Object.keys(api.sent[0].body), ["batch_id", "seq", "sent_at", "events"]);
  assert.equal(api.sent[0].body.sent_at, 42);
  assert.notEqual(api.sent[0].body.batch_id, api.sent[1].body.batch_id);
  assert.deepEqual(queue.outbox, []);
});

test("a full flush is cut at once", () => {
  const queue = newQueue(fakeApi());
  queue.startPage(0, 0);
  for (let i = 0; i < MAX_EVENTS_PER_FLUSH; i += 1) queue.push({ i });
  assert.equal(queue.pending.length, 0);
  assert.equal(queue.outbox.length, 1);
  assert.equal(queue.outbox[0].events.length, MAX_EVENTS_PER_FLUSH);
});

test("unsent flushes and the seq counter survive a reload through storage", () => {
  const storage = new MemoryStorage();
  const before = newQueue(fakeApi(() => { throw new Error("offline"); }), storage);
  before.startPage(1, 0);
  before.push({ type: "a" });
  before.cut();
  before.push({ type: "b" });
  before.cut();
  const after = newQueue(fakeApi(), storage);
  assert.deepEqual(after.outbox.map((flush) => flush.seq), [1, 2]);
  after.startPage(1, 0);
  assert.equal(after.nextSeq, 3);
});

test("a flush the server refuses for good is dropped; a refused token stops sending", async () => {
  const api = fakeApi((path, body) => {
    if (body.seq === 1) throw new ApiError(400, { error: { message: "bad event" } });
    if (body.seq === 2) throw new ApiError(403, { error: { message: "the time for this task ran out" } });
  });
  const queue = newQueue(api);
  queue.startPage(0, 0);
  for (const type of ["a", "b", "c"]) {
    queue.push({ type });
    queue.cut();
  }
  const originalError = console.error;
  console.error = () => {};
  try {
    await queue.drain();
  } finally {
    console.error = originalError;
  }
  assert.deepEqual(api.sent.map((request) => request.body.seq), [1, 2]);
  assert.deepEqual(queue.outbox.map((flush) => flush.seq), [2, 3]);
  assert.equal(queue.stopped, true);
  assert.deepEqual(queue.status.errors, ["We cannot save your work: the time for this task ran out"]);
});

test("discarding a saved page drops its pending events, flushes and counter", () => {
  const storage = new MemoryStorage();
  const queue = newQueue(fakeApi(), storage);
  queue.startPage(0, 0);
  queue.push({ type: "a" });
  queue.cut();
  queue.push({ type: "b" });
  queue.discardPage(0);
  assert.deepEqual(queue.pending, []);
  assert.deepEqual(queue.outbox, []);
  assert.equal(storage.getItem("q:seq:0"), null);
});

test("pagehide beacons every unacknowledged flush, pending events included", () => {
  const api = fakeApi();
  const queue = newQueue(api);
  queue.startPage(3, 0);
  queue.push({ type: "a" });
  queue.cut();
  queue.push({ type: "b" });
  queue.beaconAll();
  assert.deepEqual(api.beacons.map((beacon) => [beacon.path, beacon.body.seq]), [
    ["pages/3/events", 1], ["pages/3/events", 2],
  ]);
  assert.deepEqual(api.beacons[1].body, flushBody(queue.outbox[1]));
});
