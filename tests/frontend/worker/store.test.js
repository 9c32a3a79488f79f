import assert from "node:assert/strict";
import { test } from "node:test";

import { Store } from "../../../frontend_static/worker/store.js";
import { MemoryStorage } from "../fakes.js";

test("values are kept as JSON under the prefix", () => {
  const storage = new MemoryStorage();
  const store = new Store("luab:7:", () => storage);
  store.set("outbox", [{ seq: 1 }]);
  assert.deepEqual([...storage.items], [["luab:7:outbox", '[{"seq":1}]']]);
  assert.deepEqual(store.get("outbox"), [{ seq: 1 }]);
  store.remove("outbox");
  assert.equal(store.get("outbox"), null);
});

test("a corrupt value reads as missing", () => {
  const storage = new MemoryStorage();
  storage.setItem("p:seq:0", "{not json");
  assert.equal(new Store("p:", () => storage).get("seq:0"), null);
});

test("blocked storage (a third-party iframe) falls back to memory", () => {
  const store = new Store("p:", () => {
    throw new Error("SecurityError");
  });
  assert.equal(store.backend, null);
  store.set("start:0", 1234);
  assert.equal(store.get("start:0"), 1234);
  store.remove("start:0");
  assert.equal(store.get("start:0"), null);
});

test("a full storage keeps the value in memory", () => {
  const storage = new MemoryStorage();
  const store = new Store("p:", () => storage);
  storage.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  store.set("outbox", [1, 2]);
  assert.deepEqual(JSON.parse(store.memory.get("outbox")), [1, 2]);
});
