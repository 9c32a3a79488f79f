/*
 * Worker task pages: the machinery both task kinds share.
 *
 * Bootstrap -> GET assignment -> for each page: GET pages/<i> (content + events already saved), re-apply those
 * events, record new ones (flushed in small batches with client ids, retried with backoff, beaconed on pagehide,
 * kept in localStorage until the server has them), POST pages/<i>/save with a client save id -> POST submit.
 *
 * The page keeps its token in localStorage under bootstrap.resume.key. Work already started opens with a token only
 * from the market's link to the same market assignment; opened otherwise (a reload of a link without one, another
 * browser) the server sends the locked page: no token, no data, an entry ticket. The browser that kept the token
 * exchanges the ticket for a fresh token (POST resume) and carries on; any other browser stays on the locked message.
 *
 * A kind's entry module (imagenet.js, coco.js) calls startTaskPage({mount}); mount(root, content, session) draws
 * one page and returns {apply(event), records(timeSpent), canSave(), destroy()} and optionally ready() (called once
 * recording is on). The page calls session.record(event) for every interaction; the same apply() re-applies the saved
 * events after a reload.
 */
import { Api, tokenRefused } from "./api.js";
import { Clock, inferPageStart, maxEventTime, maxTimeAt } from "./clock.js";
import { showCompletion } from "./completion.js";
import { EventQueue } from "./event_queue.js";
import { StatusBar } from "./status_bar.js";
import { Store } from "./store.js";
import { configureTiming, timing } from "./timing.js";
import { uuid4 } from "./uuid.js";

const clock = new Clock();

function readJsonScript(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

/** Drives the pages of one assignment (or the example page of a preview). */
class TaskRunner {
  constructor(bootstrap, kind) {
    this.bootstrap = bootstrap;
    this.kind = kind;
    this.root = document.getElementById("task-root");
    this.counter = document.getElementById("page-counter");
    this.saveButton = document.getElementById("save-page");
    this.pageMessage = document.getElementById("page-message");
    this.pageSummary = document.getElementById("page-summary");
    this.status = new StatusBar(document.getElementById("save-status"));
    this.page = null;
    this.session = null;
    this.recording = false;
  }

  showPreview() {
    const example = readJsonScript("example-page");
    this.counter.textContent = "Example page";
    this.saveButton.hidden = true;
    if (!example) return;
    this.client = { scroll: [], visibility: [] };
    this.session = this.newSession(example.index || 0, Date.now());
    this.page = this.kind.mount(this.root, example, this.session);
    if (this.page.ready) this.page.ready();
  }

  async start() {
    const { token, api } = this.bootstrap;
    this.api = new Api(api, token, this.status);
    let assignment;
    try {
      assignment = (await this.api.request("GET", "assignment")).data;
    } catch (refused) {
      this.status.error(`This task cannot be opened: ${refused.message}`);
      return;
    }
    this.assignment = assignment;
    this.store = new Store(`luab:${assignment.assignment_id}:`);
    this.queue = new EventQueue(this.api, this.store, this.status);
    this.listen();
    // Batches left over from before a reload go first, so the page content below includes them.
    await this.queue.drain();
    if (assignment.finished) {
      await this.finish();
    } else {
      await this.advance(assignment.current_page);
    }
  }

  listen() {
    this.saveButton.addEventListener("click", () => this.savePage());
    setInterval(() => {
      if (this.queue.pending.length || this.queue.outbox.length) this.queue.flush();
    }, timing.flushIntervalMs);
    let scrollTimer = null;
    window.addEventListener("scroll", () => {
      if (scrollTimer !== null) return;
      scrollTimer = setTimeout(() => {
        scrollTimer = null;
        this.record({
          type: "scroll", x: Math.round(window.scrollX), y: Math.round(window.scrollY), time: clock.now(),
        });
      }, 200);
    }, { passive: true });
    document.addEventListener("visibilitychange", () => {
      this.record({ type: "visibility", state: document.visibilityState, time: clock.now() });
      if (document.visibilityState === "hidden") this.queue.flush();
    });
    window.addEventListener("pagehide", () => this.queue.beaconAll());
  }

  newSession(pageIndex, startedAt) {
    const runner = this;
    return {
      pageIndex,
      startedAt,
      variant: this.bootstrap.variant || "default",
      preview: Boolean(this.bootstrap.preview),
      now: () => clock.now(),
      timeAt: () => clock.now() - startedAt,
      record: (event) => runner.record(event),
      setMessage: (text) => runner.setPageMessage(text),
      setSummary: (text) => { runner.pageSummary.textContent = text || ""; },
    };
  }

  record(event) {
    if (!this.page || !this.session) return;
    if (this.session.preview) {
      this.apply(event);
      return;
    }
    if (!this.recording) return;
    this.apply(event);
    this.queue.push(event);
  }

  apply(event) {
    if (event.type === "scroll") {
      this.client.scroll.push({ x: event.x, y: event.y, time: event.time });
    } else if (event.type === "visibility") {
      this.client.visibility.push({ state: event.state, time: event.time });
    } else {
      this.page.apply(event);
    }
  }

  setPageMessage(text) {
    this.pageMessage.textContent = text || "";
  }

  async showPage(pageIndex) {
    let content;
    try {
      content = (await this.api.request("GET", `pages/${pageIndex}`)).data;
    } catch (refused) {
      this.status.error(`This page cannot be opened: ${refused.message}`);
      return;
    }
    if (content.saved) {
      await this.advance(pageIndex + 1);
      return;
    }
    const resumed = (content.resume && content.resume.events) || [];
    clock.notBefore(maxEventTime(resumed));
    let startedAt = this.store.get(`start:${pageIndex}`);
    if (typeof startedAt !== "number") {
      startedAt = inferPageStart(resumed, Date.now());
      this.store.set(`start:${pageIndex}`, startedAt);
    }
    clock.notBefore(startedAt + maxTimeAt(resumed));

    if (this.page) this.page.destroy();
    this.root.textContent = "";
    this.setPageMessage("");
    this.client = { scroll: [], visibility: [] };
    this.session = this.newSession(pageIndex, startedAt);
    this.queue.startPage(pageIndex, resumed.length);
    this.page = this.kind.mount(this.root, content, this.session);
    for (const event of resumed) this.apply(event);
    this.recording = true;
    this.record({ type: "visibility", state: document.visibilityState, time: clock.now() });
    this.counter.textContent = `Page ${pageIndex + 1} of ${this.assignment.n_pages}`;
    // Read once: from the second page on, the instructions stay folded (one tap opens them) to leave room for work.
    if (pageIndex > 0) document.getElementById("instructions").open = false;
    this.saveButton.textContent = pageIndex + 1 >= this.assignment.n_pages ? "Save and finish" : "Save and next page";
    this.saveButton.disabled = false;
    window.scrollTo(0, 0);
    if (this.page.ready) this.page.ready();
  }

  clientInfo() {
    return {
      viewport: { w: window.innerWidth, h: window.innerHeight },
      dpr: window.devicePixelRatio || 1,
      user_agent: navigator.userAgent,
      variant: this.session.variant,
      scroll: this.client.scroll,
      visibility: this.client.visibility,
    };
  }

  async savePage() {
    if (!this.recording) return;
    const verdict = this.page.canSave();
    if (!verdict.ok) {
      this.setPageMessage(verdict.message);
      return;
    }
    const pageIndex = this.session.pageIndex;
    this.recording = false;
    this.saveButton.disabled = true;
    this.setPageMessage("Saving...");
    await this.queue.flush();
    let saveId = this.store.get(`save:${pageIndex}`);
    if (!saveId) {
      saveId = uuid4();
      this.store.set(`save:${pageIndex}`, saveId);
    }
    const now = clock.now();
    const body = {
      save_id: saveId,
      started_at: this.session.startedAt,
      time_spent: now - this.session.startedAt,
      client: this.clientInfo(),
      records: this.page.records(now - this.session.startedAt),
    };
    let answer;
    try {
      answer = (await this.api.request("POST", `pages/${pageIndex}/save`, body)).data;
    } catch (refused) {
      if (tokenRefused(refused)) {
        // The token stopped working (the worker was blocked, the time for the task ran out): nothing can be saved.
        this.status.error(`We cannot save your work: ${refused.message}`);
        this.setPageMessage("");
        return;
      }
      if (refused.status === 409) {
        // Saved before (another tab, or a save whose answer was lost): continue where the server is.
        const assignment = (await this.api.request("GET", "assignment")).data;
        this.forgetPage(pageIndex);
        await this.advance(assignment.current_page);
        return;
      }
      this.setPageMessage(`This page could not be saved: ${refused.message}`);
      this.recording = true;
      this.saveButton.disabled = false;
      return;
    }
    this.forgetPage(pageIndex);
    await this.advance(answer.next_page);
  }

  forgetPage(pageIndex) {
    this.queue.discardPage(pageIndex);
    this.store.remove(`save:${pageIndex}`);
    this.store.remove(`start:${pageIndex}`);
  }

  /** Shows page pageIndex, or finishes when there is none (null: the server says all pages are saved). */
  async advance(pageIndex) {
    if (pageIndex === null || pageIndex === undefined || pageIndex >= this.assignment.n_pages) {
      await this.finish();
    } else {
      await this.showPage(pageIndex);
    }
  }

  async finish() {
    this.recording = false;
    if (this.page) this.page.destroy();
    this.page = null;
    this.root.textContent = "";
    this.saveButton.hidden = true;
    this.setPageMessage("");
    this.pageSummary.textContent = "";
    document.getElementById("instructions").hidden = true;
    this.counter.textContent = "Finished";
    let answer;
    try {
      answer = (await this.api.request("POST", "submit", {})).data;
    } catch (refused) {
      this.status.error(`Your work could not be submitted: ${refused.message}`);
      return;
    }
    this.store.remove("outbox");
    showCompletion(answer, this.bootstrap);
  }
}

/** Tokens of the work this browser started, by resume key (bootstrap.resume.key), so a reload can resume it. */
const keptTokens = new Store("luab:token:");

/** The locked page: resume here with the token this browser kept, or leave the refusal showing. */
async function resumeHere(runner, bootstrap) {
  const { key, entry } = bootstrap.resume;
  const token = keptTokens.get(key);
  const reason = document.getElementById("locked-reason");
  if (!token) return;
  const api = new Api(bootstrap.api, token, runner.status);
  let answer;
  try {
    answer = (await api.request("POST", "resume", { entry })).data;
  } catch (refused) {
    if (tokenRefused(refused)) keptTokens.remove(key);
    reason.textContent = `This browser's copy of the task could not be resumed: ${refused.message}`;
    reason.hidden = false;
    return;
  }
  keptTokens.set(key, answer.token);
  bootstrap.token = answer.token;
  document.getElementById("locked").hidden = true;
  document.getElementById("task-area").hidden = false;
  runner.start();
}

/** Starts the page for one task kind ({mount}, see above) with the bootstrap the server put in the page. */
export function startTaskPage(kind) {
  const bootstrap = readJsonScript("task-bootstrap");
  configureTiming(bootstrap.timing);
  const runner = new TaskRunner(bootstrap, kind);
  document.body.classList.add(`variant-${bootstrap.variant || "default"}`);
  if (bootstrap.preview) {
    runner.showPreview();
  } else if (bootstrap.token) {
    if (bootstrap.resume) keptTokens.set(bootstrap.resume.key, bootstrap.token);
    runner.start();
  } else if (bootstrap.resume && bootstrap.resume.entry) {
    resumeHere(runner, bootstrap);
  }
}
