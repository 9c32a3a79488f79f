// What a COCO page records (actionHistories, categoryHistories, mouseTracking) and saves.

export function newHistories() {
  return { actionHistories: [], categoryHistories: [], mouseTracking: [] };
}

/** Appends one recorded event (action, category, track) to its history, in the published shape. */
export function addToHistories(histories, event) {
  if (event.type === "action") {
    const entry = { actionType: event.actionType, iconType: event.iconType, pointFrom: event.pointFrom };
    if (event.actionType !== "remove") entry.pointTo = event.pointTo;
    entry.timeAt = event.timeAt;
    if (event.usingKeyboard) entry.usingKeyboard = true;
    histories.actionHistories.push(entry);
  } else if (event.type === "category") {
    histories.categoryHistories.push({
      categoryIndex: event.categoryIndex, categoryName: event.categoryName, timeAt: event.timeAt,
      usingKeyboard: event.usingKeyboard,
    });
  } else if (event.type === "track") {
    histories.mouseTracking.push({ x: event.x, y: event.y, timeAt: event.timeAt });
  }
}

/** The page's one record for a save; box: the image as shown ({width, height}). */
export function savedRecords(imageId, box, timeSpent, histories) {
  return [{
    image_id: imageId,
    imageWidth: Math.max(1, Math.round(box.width)),
    imageHeight: Math.max(1, Math.round(box.height)),
    timeSpent,
    actionHistories: histories.actionHistories,
    categoryHistories: histories.categoryHistories,
    mouseTracking: histories.mouseTracking,
  }];
}
