// Sinks (and sources, when the server has them): status, cursor or lag,
// last error.
import {get, ApiError} from "./api.js";
import {h, mount, fmt} from "./ui.js";

export async function sinksPage(signal) {
  const {sinks} = await get("/api/sinks", {signal});
  let sources = null;
  try {
    sources = (await get("/api/sources", {signal})).sources;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  const cell = (v) => h("td", {}, v === undefined || v === null || v === "" ? "–" : typeof v === "object" ? h("code", {}, fmt.json(v)) : String(v));
  const table = (caption, cols, rows) => h("table", {class: "list"}, h("caption", {class: "sr-only"}, caption),
    h("thead", {}, h("tr", {}, cols.map(([t]) => h("th", {scope: "col"}, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map(([, f]) => cell(f(r)))))));
  mount("Sinks",
    h("h1", {}, "Sinks"),
    sinks.length ? table("Sinks with their delivery state", [
      ["Sink", (s) => s.id], ["Type", (s) => s.type], ["Target", (s) => s.url || `${s.topic} (${(s.brokers || []).join(", ")})`], ["Segments", (s) => (s.segments || []).join(", ") || "all"],
      ["Cursor", (s) => s.cursor], ["Lag", (s) => s.lag], ["State", (s) => (s.failures ? `failing (${s.failures} in a row)` : "delivering")], ["Last error", (s) => s.last_error],
    ], sinks) : h("p", {}, "No sink. Create one with POST /api/sinks."),
    sources === null ? null : h("section", {"aria-labelledby": "h-sources"}, h("h2", {id: "h-sources"}, "Sources"),
      sources.length ? table("Sources with their state", [
        ["Source", (s) => s.name], ["Kind", (s) => s.kind], ["State", (s) => s.state], ["Position", (s) => s.position],
        ["Lag (records)", (s) => s.lag_records], ["Lag (s)", (s) => s.lag_seconds], ["Last error", (s) => s.last_error],
      ], sources) : h("p", {}, "No source configured.")));
}
