// What every page's script needs from the DOM: one way to make an element, points as fractions of a box, safe links.

/** A new element with an optional class and text (set as text: nothing is parsed as HTML). */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Fraction (0..1, 4 decimals) of a point inside a box {left, top, width, height}, or null when it is outside. */
export function fractionOfBox(box, clientX, clientY) {
  if (box.width <= 0 || box.height <= 0) return null;
  const x = (clientX - box.left) / box.width;
  const y = (clientY - box.top) / box.height;
  if (x < 0 || x > 1 || y < 0 || y > 1) return null;
  return { x: roundFraction(x), y: roundFraction(y) };
}

/** A fraction to the 4 decimals the records keep. */
export function roundFraction(value) {
  return Math.round(value * 10000) / 10000;
}

/** Fraction of a point inside an element's box on screen, or null when the point is outside it. */
export function fractionIn(node, clientX, clientY) {
  return fractionOfBox(node.getBoundingClientRect(), clientX, clientY);
}

/** The link as an absolute http(s) URL, or null: a `javascript:` or `data:` link must never become clickable. */
export function webLink(href, base) {
  try {
    const url = new URL(String(href), base);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch (error) {
    return null;
  }
}
