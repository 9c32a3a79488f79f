import { element } from "../../lib/dom.js";

const CURSOR_ANNOUNCE_DELAY_MS = 500; // a held arrow key is announced once it rests, not at every step

/** A visually hidden polite live region; say() replaces what it says, sayLater() waits until calls rest. */
export function announcer() {
  const region = element("p", "visually-hidden coco-announcer");
  region.setAttribute("aria-live", "polite");
  let pending = null;
  function say(text) {
    clearTimeout(pending);
    region.textContent = text;
  }
  function sayLater(text) {
    clearTimeout(pending);
    pending = setTimeout(() => say(text), CURSOR_ANNOUNCE_DELAY_MS);
  }
  return { region, say, sayLater, stop: () => clearTimeout(pending) };
}
