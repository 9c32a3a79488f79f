// The playback's time arithmetic, free of the page: what had happened by time t.

export function finite(point) {
  return Boolean(point) && Number.isFinite(point.x) && Number.isFinite(point.y);
}

export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Milliseconds the pointer spent over an image by `until` (an enter not yet left counts up to `until`). */
export function hoveredMs(hovered, until) {
  let total = 0;
  let enteredAt = null;
  for (const h of hovered) {
    if (h.time > until) continue;
    if (h.action === "enter") {
      enteredAt = h.time;
    } else if (h.action === "leave" && enteredAt !== null) {
      total += h.time - enteredAt;
      enteredAt = null;
    }
  }
  if (enteredAt !== null && Number.isFinite(until)) total += until - enteredAt;
  return total;
}

/** The last point with a finite position at or before `until`, or null. */
export function lastBefore(points, until, timeOf) {
  let last = null;
  for (const p of points) {
    if (timeOf(p) <= until && finite(p)) last = p;
  }
  return last;
}

/** An ImageNet-style item's clicks, oldest first, each with `selected`. */
export function clicksOf(item) {
  const selects = (item.selected_record || []).map((click) => ({ selected: true, ...click }));
  const deselects = (item.deselected_record || []).map((click) => ({ selected: false, ...click }));
  return selects.concat(deselects).sort((a, b) => a.time - b.time);
}

/** Whether the item was selected by `until`: its last click by then says so (none: not selected). */
export function selectedAt(clicks, until) {
  let state = false;
  for (const click of clicks) {
    if (click.time <= until) state = click.selected;
  }
  return state;
}

/** ImageNet-style times are epoch ms: the page's clock starts at its first recorded event. */
export function imagenetTimeline(page) {
  const times = [];
  for (const item of page.items) {
    for (const name of ["selected_record", "deselected_record", "hovered_record", "mouse_tracking"]) {
      for (const entry of item[name] || []) {
        if (Number.isFinite(entry.time)) times.push(entry.time);
      }
    }
  }
  if (!times.length) return { start: 0, duration: 0 };
  const start = Math.min(...times);
  return { start, duration: Math.max(...times) - start };
}

/** COCO-style times are ms since the page was shown: it lasts its time spent, or up to its last event. */
export function cocoDuration(page) {
  const times = (page.action_histories || []).map((a) => a.timeAt)
    .concat((page.mouse_tracking || []).map((p) => p.timeAt))
    .filter(Number.isFinite);
  return Math.max(page.time_spent_ms || 0, times.length ? Math.max(...times) : 0);
}
