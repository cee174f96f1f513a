// The HTTP API with the bearer token, and the live alert stream over fetch().
// EventSource cannot send an Authorization header, so the stream is read from a
// fetch() ReadableStream and parsed as text/event-stream here: the token stays in a header.

const KEY = "ansim.token";

export function getToken() {
  return sessionStorage.getItem(KEY);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(path, { method = "GET", body, token = getToken(), signal } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network");
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    if (res.status === 401) onUnauthorized();
    const detail = data && typeof data === "object" ? data.detail : String(data || "");
    throw new ApiError(res.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "" && v !== false) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Parse text/event-stream blocks out of a growing buffer; returns the unparsed rest. */
export function parseSse(buffer, emit) {
  const text = buffer.replace(/\r\n?/g, "\n");
  const blocks = text.split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    const ev = { event: "message", data: [], id: null, retry: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") ev.event = value;
      else if (field === "data") ev.data.push(value);
      else if (field === "id") ev.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) ev.retry = Number(value);
    }
    emit({ ...ev, data: ev.data.join("\n"), hasData: ev.data.length > 0 });
  }
  return rest;
}

// The server writes ": keep-alive" after this many idle seconds (api/routes/alerts.py).
export const KEEPALIVE_S = 15;
const SILENCE_MS = 2 * KEEPALIVE_S * 1000; // nothing at all for this long: the link is dead
const CONNECT_MS = 10_000; // no response headers within this: give up and retry
const BACKOFF_MAX_MS = 15_000;

/**
 * Follow GET /api/v1/alerts/stream: onAlert(alert) for each change, onStatus("live" |
 * "lost") as the connection comes and goes. "live" only while bytes arrive: when nothing
 * (event or keep-alive) came for 2x the keep-alive interval the connection is dropped and
 * reported lost, then reopened with backoff and Last-Event-ID so nothing is missed.
 * Returns a stop() function.
 */
export function streamAlerts({ onAlert, onStatus, onOpen }) {
  const controller = new AbortController();
  let lastId = null;
  let retryMs = 2000;
  let failures = 0;

  async function connectOnce() {
    const conn = new AbortController();
    const abortAll = () => conn.abort();
    controller.signal.addEventListener("abort", abortAll);
    let lastByte = Date.now();
    let opened = false;
    const watchdog = setInterval(() => {
      const limit = opened ? SILENCE_MS : CONNECT_MS;
      if (Date.now() - lastByte > limit) conn.abort();
    }, 1000);
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${getToken()}` };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const res = await fetch("/api/v1/alerts/stream", {
        headers,
        signal: conn.signal,
        cache: "no-store",
      });
      if (res.status === 401) {
        onUnauthorized();
        throw new ApiError(401, "unauthorized");
      }
      if (!res.ok || !res.body) throw new ApiError(res.status, "stream refused");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      lastByte = Date.now();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        lastByte = Date.now();
        if (!opened) {
          opened = true;
          failures = 0;
          onStatus?.("live");
          onOpen?.();
        }
        buffer = parseSse(buffer + value, (ev) => {
          if (ev.retry !== null) retryMs = ev.retry;
          if (ev.id !== null) lastId = ev.id;
          if (ev.event === "alert" && ev.hasData) {
            try {
              onAlert(JSON.parse(ev.data));
            } catch (err) {
              console.warn("bad alert event", err);
            }
          }
        });
      }
    } finally {
      clearInterval(watchdog);
      controller.signal.removeEventListener("abort", abortAll);
    }
  }

  (async () => {
    while (!controller.signal.aborted) {
      try {
        await connectOnce();
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) return;
      }
      if (controller.signal.aborted) return;
      onStatus?.("lost");
      const wait = Math.min(retryMs * 2 ** failures, BACKOFF_MAX_MS);
      failures += 1;
      await new Promise((r) => setTimeout(r, wait));
    }
  })();

  return () => controller.abort();
}
