// How often the page flushes its events and how it backs off while the server cannot be reached.

// Flush every few seconds; retry a failed request after 1 s, 2 s, 4 s ... at most 30 s apart (or as soon as the
// browser says it is online again). The page config (bootstrap.timing, from settings.WORKER_PAGE_TIMING) may
// change them: {flush_interval_ms, retry_first_delay_ms, retry_max_delay_ms}.
export const timing = { flushIntervalMs: 3000, retryFirstDelayMs: 1000, retryMaxDelayMs: 30000 };

const CONFIG_NAMES = {
  flush_interval_ms: "flushIntervalMs", retry_first_delay_ms: "retryFirstDelayMs", retry_max_delay_ms: "retryMaxDelayMs",
};

/** Takes the page config's positive values; anything else keeps the default. */
export function configureTiming(config) {
  for (const [name, key] of Object.entries(CONFIG_NAMES)) {
    const value = config && Number(config[name]);
    if (value > 0) timing[key] = value;
  }
}

/** How long to wait before retry number `attempt` (0 first); a Retry-After (seconds) may only lengthen it. */
export function retryDelay(attempt, retryAfterSeconds) {
  const backoff = Math.min(timing.retryFirstDelayMs * 2 ** attempt, timing.retryMaxDelayMs);
  return retryAfterSeconds > 0 ? Math.max(backoff, retryAfterSeconds * 1000) : backoff;
}
