import { tokenRefused } from "./api.js";
import { uuid4 } from "./uuid.js";

export const MAX_EVENTS_PER_FLUSH = 5000;

/** The first seq for new flushes of a page: above the saved events' count, the stored counter and every flush of
 * the page still in the outbox (every earlier flush had at least one event, so this seq is above all of theirs). */
export function firstSeq(pageIndex, resumedEventCount, storedSeq, outbox) {
  const afterOutbox = outbox.filter((flush) => flush.page === pageIndex).map((flush) => flush.seq + 1);
  return Math.max(resumedEventCount + 1, storedSeq || 1, ...afterOutbox);
}

/** What POST pages/<i>/events (and its beacon) carries for one flush. */
export function flushBody(flush) {
  return { batch_id: flush.batch_id, seq: flush.seq, sent_at: flush.sent_at, events: flush.events };
}

/**
 * Events go to `pending`, are cut into flushes (client flush id + seq) every few seconds, and wait in the
 * outbox (mirrored to storage) until the server acknowledged them; a resent flush id is never stored twice.
 */
export class EventQueue {
  constructor(api, store, status, wallClock = Date.now) {
    this.api = api;
    this.store = store;
    this.status = status;
    this.wallClock = wallClock;
    this.outbox = store.get("outbox") || [];
    this.pending = [];
    this.pageIndex = null;
    this.nextSeq = 1;
    this.draining = null;
    this.stopped = false;
  }

  startPage(pageIndex, resumedEventCount) {
    this.pageIndex = pageIndex;
    this.pending = [];
    this.nextSeq = firstSeq(pageIndex, resumedEventCount, this.store.get(`seq:${pageIndex}`), this.outbox);
  }

  push(event) {
    this.pending.push(event);
    if (this.pending.length >= MAX_EVENTS_PER_FLUSH) this.cut();
  }

  cut() {
    if (!this.pending.length || this.pageIndex === null) return;
    this.outbox.push({
      page: this.pageIndex, batch_id: uuid4(), seq: this.nextSeq, sent_at: this.wallClock(), events: this.pending,
    });
    this.nextSeq += 1;
    this.pending = [];
    this.store.set(`seq:${this.pageIndex}`, this.nextSeq);
    this.persist();
  }

  persist() {
    this.store.set("outbox", this.outbox);
  }

  /** Events recorded after a page was saved belong to no record: drop them. */
  discardPage(pageIndex) {
    if (this.pageIndex === pageIndex) this.pending = [];
    this.outbox = this.outbox.filter((flush) => flush.page !== pageIndex);
    this.store.remove(`seq:${pageIndex}`);
    this.persist();
  }

  flush() {
    this.cut();
    return this.drain();
  }

  drain() {
    if (!this.draining) {
      this.draining = this.sendOutbox().finally(() => {
        this.draining = null;
      });
    }
    return this.draining;
  }

  async sendOutbox() {
    while (this.outbox.length && !this.stopped) {
      const flush = this.outbox[0];
      try {
        await this.api.request("POST", `pages/${flush.page}/events`, flushBody(flush));
      } catch (refused) {
        if (tokenRefused(refused)) {
          this.stopped = true;
          this.status.error(`We cannot save your work: ${refused.message}`);
          return;
        }
        // The server refused this flush for good (invalid, page already saved): resending cannot help.
        console.error(`events of page ${flush.page} refused:`, refused.message);
      }
      if (this.outbox[0] === flush) this.outbox.shift();
      this.persist();
    }
  }

  /** pagehide: hand everything still unacknowledged to the browser; storage keeps it for a reload. */
  beaconAll() {
    this.cut();
    for (const flush of this.outbox) this.api.beacon(`pages/${flush.page}/events`, flushBody(flush));
  }
}
