// One candidate image's record on an ImageNet-style page: what the events add to it, and what a save sends.

export function newRecord(imageId) {
  return {
    imageID: imageId,
    selected: false,
    selectedRecord: [],
    deselectedRecord: [],
    hoveredRecord: [],
    mouseTracking: [],
  };
}

/** Adds one event (click, hover, move) to the record; returns how the page's selected count changes (-1, 0, 1). */
export function applyToRecord(record, event) {
  if (event.type === "click") {
    // A keyboard toggle pointed at nothing: no point is made up.
    const click = event.usingKeyboard
      ? { time: event.time, usingKeyboard: true }
      : { x: event.x, y: event.y, time: event.time };
    (event.selected ? record.selectedRecord : record.deselectedRecord).push(click);
    const change = record.selected === event.selected ? 0 : (event.selected ? 1 : -1);
    record.selected = event.selected;
    return change;
  }
  if (event.type === "hover") {
    record.hoveredRecord.push({ action: event.action, time: event.time });
  } else if (event.type === "move") {
    record.mouseTracking.push({ x: event.x, y: event.y, time: event.time });
  }
  return 0;
}

/** The record a page save sends, with where the image was shown: box {left, top, width, height} in the viewport,
 * scroll {x, y} of the page. */
export function savedRecord(record, box, scroll) {
  return {
    imageID: record.imageID,
    selected: record.selected,
    selectedRecord: record.selectedRecord,
    deselectedRecord: record.deselectedRecord,
    hoveredRecord: record.hoveredRecord,
    mouseTracking: record.mouseTracking,
    imagePosition: { x: Math.round(box.left + scroll.x), y: Math.round(box.top + scroll.y) },
    imageWidth: Math.max(1, Math.round(box.width)),
    imageHeight: Math.max(1, Math.round(box.height)),
  };
}
