import { retryDelay } from "./timing.js";
import { uuid4 } from "./uuid.js";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error.message : `the server answered ${status}`;
    super(detail);
    this.status = status;
    this.body = body;
  }
}

/** True when the token no longer opens the assignment (blocked worker, time ran out): retrying cannot help. */
export function tokenRefused(error) {
  return error.status === 401 || error.status === 403;
}

/** No answer, 5xx, 408 and 429 are worth retrying; any other answer is final. */
export function retryable(response) {
  return !response || response.status >= 500 || response.status === 408 || response.status === 429;
}

/** Waits ms, or less when the browser says it is online again. */
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

/** The worker API with the assignment token; network failures, 5xx, 408 and 429 are retried with backoff. */
export class Api {
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
      if (!retryable(response)) {
        this.status.recovered(requestId);
        const data = await response.json().catch(() => ({}));
        if (response.ok) return { status: response.status, data };
        throw new ApiError(response.status, data);
      }
      this.status.retrying(requestId);
      await sleep(retryDelay(attempt, response ? Number(response.headers.get("Retry-After")) : NaN));
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
