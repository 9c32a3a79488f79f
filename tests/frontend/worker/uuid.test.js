import assert from "node:assert/strict";
import { test } from "node:test";

import { uuid4 } from "../../../frontend_static/worker/uuid.js";

test("uuid4 gives distinct version 4 UUIDs", () => {
  const ids = new Set(Array.from({ length: 100 }, uuid4));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});
