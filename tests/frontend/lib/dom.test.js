import assert from "node:assert/strict";
import { test } from "node:test";

import { fractionOfBox, roundFraction, webLink } from "../../../frontend_static/lib/dom.js";

const box = { left: 100, top: 50, width: 200, height: 100 };

test("a point inside the box is a fraction of it, to 4 decimals", () => {
  assert.deepEqual(fractionOfBox(box, 150, 75), { x: 0.25, y: 0.25 });
  assert.deepEqual(fractionOfBox(box, 100 + 200 / 3, 50), { x: 0.3333, y: 0 });
  assert.deepEqual(fractionOfBox(box, 300, 150), { x: 1, y: 1 });
});

test("a point outside the box, or an empty box, gives null", () => {
  assert.equal(fractionOfBox(box, 99, 75), null);
  assert.equal(fractionOfBox(box, 150, 151), null);
  assert.equal(fractionOfBox({ left: 0, top: 0, width: 0, height: 10 }, 0, 5), null);
});

test("roundFraction keeps 4 decimals", () => {
  assert.equal(roundFraction(0.123456), 0.1235);
});

test("only http(s) links survive, made absolute", () => {
  const base = "https://luab.example/worker/";
  assert.equal(webLink("https://en.wikipedia.org/wiki/Cat", base), "https://en.wikipedia.org/wiki/Cat");
  assert.equal(webLink("/help", base), "https://luab.example/help");
  assert.equal(webLink("javascript:alert(1)", base), null);
  assert.equal(webLink("data:text/html,<b>x</b>", base), null);
  assert.equal(webLink("http://[bad", base), null);
});
