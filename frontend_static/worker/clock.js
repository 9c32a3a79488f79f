// Time on the worker page: a clock that never goes backwards, and where a resumed page's start lies.

/** Epoch milliseconds that never go backwards (every recorded list must be monotonic, across reloads too). */
export class Clock {
  constructor(wallClock = Date.now) {
    this.wallClock = wallClock;
    this.last = 0;
  }

  now() {
    this.last = Math.max(this.wallClock(), this.last);
    return this.last;
  }

  notBefore(epochMs) {
    this.last = Math.max(this.last, epochMs);
  }
}

/** The latest epoch `time` among the events, 0 when none has one. */
export function maxEventTime(events) {
  let latest = 0;
  for (const event of events) {
    if (typeof event.time === "number" && event.time > latest) latest = event.time;
  }
  return latest;
}

/** The latest page-relative `timeAt` among the events, -1 when none has one. */
export function maxTimeAt(events) {
  let latest = -1;
  for (const event of events) {
    if (typeof event.timeAt === "number" && event.timeAt > latest) latest = event.timeAt;
  }
  return latest;
}

/** When storage lost the page's start: place it so page-relative times continue after the saved ones. */
export function inferPageStart(resumed, now) {
  const lastTimeAt = maxTimeAt(resumed);
  if (lastTimeAt >= 0) return now - lastTimeAt - 1;
  const firstEpoch = resumed.find((event) => typeof event.time === "number");
  return firstEpoch ? firstEpoch.time : now;
}
