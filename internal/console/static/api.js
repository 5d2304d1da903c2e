// The console's only way to the server: the public HTTP API, with the
// workspace api key kept for this tab (sessionStorage).

const KEY = "cohort.apiKey";

export const auth = {
  get: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

// ApiError carries the server's status, sentence and JSON pointer.
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.path = body ? body.path : undefined;
  }
}

// api calls a route and decodes its JSON answer; errors become ApiError.
// A 401 forgets the key and goes back to sign-in.
export async function api(method, path, body, {signal, key} = {}) {
  const headers = {Authorization: "Bearer " + (key || auth.get()), Accept: "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal});
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = {error: text}; }
  if (!res.ok) {
    if (res.status === 401 && !key) {
      auth.clear();
      location.hash = "#/signin";
    }
    throw new ApiError(res.status, data);
  }
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const enc = encodeURIComponent;

// stream reads Server-Sent Events from a route with the api key (an
// EventSource cannot send it), calling onEvent(id, data) for each, until
// the signal aborts. It reconnects from the last id after a drop.
export async function stream(path, onEvent, signal) {
  let last = null;
  while (!signal.aborted) {
    try {
      const headers = {Authorization: "Bearer " + auth.get(), Accept: "text/event-stream"};
      if (last !== null) headers["Last-Event-ID"] = last;
      const res = await fetch(path, {headers, signal});
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let id = null, data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("id:")) id = line.slice(3).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) {
            if (id !== null) last = id;
            onEvent(id, JSON.parse(data));
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status < 500) throw e;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
