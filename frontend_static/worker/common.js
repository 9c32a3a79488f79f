/*
 * Worker task pages: the machinery both task kinds share.
 *
 * Bootstrap -> GET assignment -> for each page: GET pages/<i> (content + events already saved), replay those
 * events, record new ones (flushed in small batches with client ids, retried with backoff, beaconed on pagehide,
 * kept in localStorage until the server has them), POST pages/<i>/save with a client save id -> POST submit.
 *
 * The page keeps its token in localStorage under bootstrap.resume.key. Work already started opens with a token only
 * from the market's link to the same market assignment; opened otherwise (a reload of a link without one, another
 * browser) the server sends the locked page: no token, no data, an entry ticket. The browser that kept the token
 * exchanges the ticket for a fresh token (POST resume) and carries on; any other browser stays on the locked message.
 *
 * A kind module (imagenet.js, coco.js) registers itself with LUAB.registerKind(name, {mount}); mount(root,
 * content, session) draws one page and returns {apply(event), records(timeSpent), canSave(), destroy()} and
 * optionally ready() (called once recording is on). The page calls session.record(event) for every interaction;
 * the same apply() replays the saved events after a reload.
 */
(function () {
  "use strict";

  const MAX_EVENTS_PER_BATCH = 5000;
  // Flush every few seconds; retry a failed request after 1 s, 2 s, 4 s ... at most 30 s apart (or as soon as the
  // browser says it is online again). The page config (bootstrap.timing, from settings.WORKER_PAGE_TIMING) may
  // change them: {flush_interval_ms, retry_first_delay_ms, retry_max_delay_ms}.
  const timing = { flushIntervalMs: 3000, retryFirstDelayMs: 1000, retryMaxDelayMs: 30000 };

  function configureTiming(config) {
    const names = {
      flush_interval_ms: "flushIntervalMs", retry_first_delay_ms: "retryFirstDelayMs", retry_max_delay_ms: "retryMaxDelayMs",
    };
    for (const [name, key] of Object.entries(names)) {
      const value = config && Number(config[name]);
      if (value > 0) timing[key] = value;
    }
  }
  const RETRYING_MESSAGE = "Your work is kept in this page; we are retrying to save it. Please keep this page open.";

  const kinds = {};

  function registerKind(name, module) {
    kinds[name] = module;
  }

  function uuid4() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function readJsonScript(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  /** Fraction (0..1, 4 decimals) of a point inside an element's box, or null when the point is outside it. */
  function fractionIn(element, clientX, clientY) {
    const box = element.getBoundingClientRect();
    if (box.width <= 0 || box.height <= 0) return null;
    const x = (clientX - box.left) / box.width;
    const y = (clientY - box.top) / box.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return null;
    return { x: Math.round(x * 10000) / 10000, y: Math.round(y * 10000) / 10000 };
  }

  /** Epoch milliseconds that never go backwards (every recorded list must be monotonic, across reloads too). */
  const clock = {
    last: 0,
    now() {
      this.last = Math.max(Date.now(), this.last);
      return this.last;
    },
    notBefore(epochMs) {
      this.last = Math.max(this.last, epochMs);
    },
  };

  function sleep(ms) {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        window.removeEventListener("online", wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      window.addEventListener("online", wake);
    });
  }

  /** localStorage under one prefix; falls back to memory where storage is blocked (third-party iframes). */
  class Store {
    constructor(prefix) {
      this.prefix = prefix;
      this.memory = new Map();
      try {
        window.localStorage.setItem(`${prefix}probe`, "1");
        window.localStorage.removeItem(`${prefix}probe`);
        this.backend = window.localStorage;
      } catch (blocked) {
        this.backend = null;
      }
    }

    get(key) {
      const raw = this.backend ? this.backend.getItem(this.prefix + key) : this.memory.get(key);
      if (raw == null) return null;
      try {
        return JSON.parse(raw);
      } catch (corrupt) {
        return null;
      }
    }

    set(key, value) {
      const raw = JSON.stringify(value);
      if (this.backend) {
        try {
          this.backend.setItem(this.prefix + key, raw);
          return;
        } catch (quotaExceeded) {
          // Storage full: this session still has the value in memory and the server has the rest.
        }
      }
      this.memory.set(key, raw);
    }

    remove(key) {
      if (this.backend) this.backend.removeItem(this.prefix + key);
      this.memory.delete(key);
    }
  }

  /** The plain message bar: retrying, errors, and nothing when all is well. */
  class StatusBar {
    constructor(element) {
      this.element = element;
      this.failing = new Set();
      this.errorText = "";
    }

    retrying(requestId) {
      this.failing.add(requestId);
      this.render();
    }

    recovered(requestId) {
      if (this.failing.delete(requestId)) this.render();
    }

    error(text) {
      this.errorText = text;
      this.render();
    }

    render() {
      const text = this.errorText || (this.failing.size ? RETRYING_MESSAGE : "");
      this.element.textContent = text;
      this.element.hidden = !text;
      this.element.classList.toggle("status-error", Boolean(this.errorText));
    }
  }

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && body.error ? body.error.message : `the server answered ${status}`;
      super(detail);
      this.status = status;
      this.body = body;
    }
  }

  /** The worker API with the assignment token; network failures, 5xx, 408 and 429 are retried with backoff. */
  class Api {
    constructor(base, token, status) {
      this.base = base.replace(/\/$/, "");
      this.token = token;
      this.status = status;
    }

    url(path) {
      return `${this.base}/${path}`;
    }

    async request(method, path, body) {
      const requestId = uuid4();
      for (let attempt = 0; ; attempt += 1) {
        let response = null;
        try {
          response = await fetch(this.url(path), {
            method,
            headers: {
              Authorization: `Bearer ${this.token}`,
              Accept: "application/json",
              ...(body === undefined ? {} : { "Content-Type": "application/json" }),
            },
            body: body === undefined ? undefined : JSON.stringify(body),
            credentials: "omit",
            cache: "no-store",
          });
        } catch (networkFailure) {
          response = null;
        }
        if (response && response.status < 500 && response.status !== 408 && response.status !== 429) {
          this.status.recovered(requestId);
          const data = await response.json().catch(() => ({}));
          if (response.ok) return { status: response.status, data };
          throw new ApiError(response.status, data);
        }
        this.status.retrying(requestId);
        const backoff = Math.min(timing.retryFirstDelayMs * 2 ** attempt, timing.retryMaxDelayMs);
        const retryAfterSeconds = response ? Number(response.headers.get("Retry-After")) : NaN;
        await sleep(retryAfterSeconds > 0 ? Math.max(backoff, retryAfterSeconds * 1000) : backoff);
      }
    }

    /** Fire-and-forget delivery that survives the page going away (pagehide). */
    beacon(path, body) {
      const url = `${this.url(path)}?token=${encodeURIComponent(this.token)}`;
      const payload = JSON.stringify(body);
      const blob = new Blob([payload], { type: "application/json" });
      const queued = Boolean(navigator.sendBeacon) && navigator.sendBeacon(url, blob);
      if (!queued) {
        fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: payload,
          keepalive: true,
          credentials: "omit",
        }).catch(() => {});
      }
    }
  }

  /**
   * Events go to `pending`, are cut into batches (client batch id + seq) every few seconds, and wait in the
   * outbox (mirrored to storage) until the server acknowledged them; a resent batch id is never stored twice.
   */
  class EventQueue {
    constructor(api, store, status) {
      this.api = api;
      this.store = store;
      this.status = status;
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
      // Every earlier batch of this page had at least one event, so this seq is above all of theirs.
      const stored = this.outbox.filter((batch) => batch.page === pageIndex).map((batch) => batch.seq + 1);
      this.nextSeq = Math.max(resumedEventCount + 1, this.store.get(`seq:${pageIndex}`) || 1, ...stored);
    }

    push(event) {
      this.pending.push(event);
      if (this.pending.length >= MAX_EVENTS_PER_BATCH) this.cut();
    }

    cut() {
      if (!this.pending.length || this.pageIndex === null) return;
      this.outbox.push({
        page: this.pageIndex, batch_id: uuid4(), seq: this.nextSeq, sent_at: Date.now(), events: this.pending,
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
      this.outbox = this.outbox.filter((batch) => batch.page !== pageIndex);
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
        const batch = this.outbox[0];
        try {
          await this.api.request("POST", `pages/${batch.page}/events`, {
            batch_id: batch.batch_id, seq: batch.seq, sent_at: batch.sent_at, events: batch.events,
          });
        } catch (refused) {
          if (refused.status === 401 || refused.status === 403) {
            this.stopped = true;
            this.status.error(`We cannot save your work: ${refused.message}`);
            return;
          }
          // The server refused this batch for good (invalid, page already saved): resending cannot help.
          console.error(`events of page ${batch.page} refused:`, refused.message);
        }
        if (this.outbox[0] === batch) this.outbox.shift();
        this.persist();
      }
    }

    /** pagehide: hand everything still unacknowledged to the browser; storage keeps it for a reload. */
    beaconAll() {
      this.cut();
      for (const batch of this.outbox) {
        this.api.beacon(`pages/${batch.page}/events`, {
          batch_id: batch.batch_id, seq: batch.seq, sent_at: batch.sent_at, events: batch.events,
        });
      }
    }
  }

  function maxEventTime(events) {
    let latest = 0;
    for (const event of events) {
      if (typeof event.time === "number" && event.time > latest) latest = event.time;
    }
    return latest;
  }

  function maxTimeAt(events) {
    let latest = -1;
    for (const event of events) {
      if (typeof event.timeAt === "number" && event.timeAt > latest) latest = event.timeAt;
    }
    return latest;
  }

  /** When storage lost the page's start: place it so page-relative times continue after the saved ones. */
  function inferPageStart(resumed) {
    const lastTimeAt = maxTimeAt(resumed);
    if (lastTimeAt >= 0) return Date.now() - lastTimeAt - 1;
    const firstEpoch = resumed.find((event) => typeof event.time === "number");
    return firstEpoch ? firstEpoch.time : Date.now();
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
      const pageIndex = assignment.current_page;
      if (assignment.finished || pageIndex === null || pageIndex === undefined || pageIndex >= assignment.n_pages) {
        await this.finish();
      } else {
        await this.showPage(pageIndex);
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
        startedAt = inferPageStart(resumed);
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
        if (refused.status === 401 || refused.status === 403) {
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
      const done = document.getElementById("done");
      document.getElementById("completion-code").textContent = answer.completion_code;
      done.hidden = false;
      document.body.classList.add("finished");
      offerCopy(answer.completion_code);
      if (answer.turk_submit_to) {
        this.submitToMarket(answer);
      } else if (answer.redirect_url) {
        const link = document.getElementById("redirect-link");
        link.href = answer.redirect_url;
        link.parentElement.hidden = false;
        setTimeout(() => window.location.assign(answer.redirect_url), 1500);
      }
    }

    /** MTurk: the page itself (inside the market's iframe) posts the externalSubmit form. */
    submitToMarket(answer) {
      const form = document.createElement("form");
      form.method = "POST";
      form.action = answer.turk_submit_to;
      const fields = {
        assignmentId: answer.market_assignment_id || this.bootstrap.market_assignment_id
          || new URLSearchParams(window.location.search).get("assignmentId"),
        completion_code: answer.completion_code,
      };
      for (const [name, value] of Object.entries(fields)) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        form.appendChild(input);
      }
      document.body.appendChild(form);
      form.submit();
    }
  }

  /** The Copy button beside the completion code (the clipboard API needs a secure context: else copy the selection). */
  function offerCopy(code) {
    const button = document.getElementById("copy-code");
    const said = document.getElementById("copy-status");
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(code);
      } catch (refused) {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById("completion-code"));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        if (!document.execCommand("copy")) {
          said.textContent = "Select the code and copy it.";
          return;
        }
      }
      said.textContent = "Copied.";
    });
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
      if (refused.status === 401 || refused.status === 403) keptTokens.remove(key);
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

  function startTaskPage() {
    const bootstrap = readJsonScript("task-bootstrap");
    configureTiming(bootstrap.timing);
    const kind = kinds[bootstrap.kind];
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

  window.LUAB = { registerKind, fractionIn, uuid4 };
  document.addEventListener("DOMContentLoaded", startTaskPage);
})();
