// Dragging an icon with pointer events (mouse, pen, touch): a ghost of the icon follows the pointer.
import { element } from "../../lib/dom.js";
import { categoryIcon } from "./icons.js";

const CLICK_SLOP_PX = 4; // a press that moves less than this is a click, not a drag
const END_EVENTS = ["pointerup", "pointercancel", "lostpointercapture"];

/**
 * Follows one drag that `event` (a pointerdown on `source`) starts: move(clientX, clientY) at every pointer move,
 * end(drop) once: drop is null when the drag was cancelled (or the source left the page mid-drag: the group
 * changed), else {clientX, clientY, clicked} (clicked: the pointer hardly moved).
 */
export function followDrag(event, category, source, { move, end }) {
  if (event.button !== undefined && event.button > 0) return;
  event.preventDefault();
  source.setPointerCapture(event.pointerId);
  const pressedAt = { x: event.clientX, y: event.clientY };
  const ghost = element("div", "drag-ghost");
  ghost.appendChild(categoryIcon(category, 48));
  document.body.appendChild(ghost);
  source.classList.add("dragging");

  function follow(moveEvent) {
    ghost.style.left = `${moveEvent.clientX}px`;
    ghost.style.top = `${moveEvent.clientY}px`;
    move(moveEvent.clientX, moveEvent.clientY);
  }

  function finish(endEvent) {
    source.removeEventListener("pointermove", follow);
    for (const type of END_EVENTS) source.removeEventListener(type, finish);
    ghost.remove();
    source.classList.remove("dragging");
    if (endEvent.type !== "pointerup") {
      end(null);
      return;
    }
    const distance = Math.hypot(endEvent.clientX - pressedAt.x, endEvent.clientY - pressedAt.y);
    end({ clientX: endEvent.clientX, clientY: endEvent.clientY, clicked: distance < CLICK_SLOP_PX });
  }

  source.addEventListener("pointermove", follow);
  for (const type of END_EVENTS) source.addEventListener(type, finish);
  follow(event);
}
