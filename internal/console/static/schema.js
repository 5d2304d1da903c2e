// The schema: traits and events with value types, counts, conflicts and
// top values.
import {get, enc} from "./api.js";
import {h, mount, fmt} from "./ui.js";

export async function schemaPage(signal) {
  const s = await get("/api/schema", {signal});
  const types = (t) => Object.entries(t || {}).map(([k, n]) => `${k} ${fmt.n(n)}`).join(", ");
  const conflict = (t) => Object.keys(t || {}).filter((k) => k !== "null").length > 1;
  const top = (q, label) => {
    const cell = h("td", {});
    const btn = h("button", {type: "button", class: "link", "aria-label": `Show top values of ${label}`}, "Show");
    btn.addEventListener("click", async () => {
      const res = await get(`/api/schema/values?${q}&limit=5`, {signal});
      cell.replaceChildren(...(res.values || []).map((v) => h("div", {}, h("code", {}, fmt.json(v.value)), ` ${fmt.n(v.count)}`)));
      if (!(res.values || []).length) cell.textContent = "none";
    });
    cell.append(btn);
    return cell;
  };
  const flag = (t) => (conflict(t) ? h("span", {class: "warn"}, "type conflict") : "");
  mount("Schema",
    h("h1", {}, "Schema"),
    h("section", {"aria-labelledby": "h-traits"}, h("h2", {id: "h-traits"}, `Traits (${(s.traits || []).length})`),
      h("table", {class: "list"}, h("caption", {class: "sr-only"}, "Traits with their value types"),
        h("thead", {}, h("tr", {}, ["Trait", "Types seen", "Conflicts", "Top values"].map((t) => h("th", {scope: "col"}, t)))),
        h("tbody", {}, (s.traits || []).map((t) => h("tr", {}, h("td", {}, t.name), h("td", {}, types(t.types)), h("td", {}, flag(t.types)), top(`trait=${enc(t.name)}`, t.name)))))),
    h("section", {"aria-labelledby": "h-events"}, h("h2", {id: "h-events"}, `Events (${(s.events || []).length})`),
      (s.events || []).map((e) => h("details", {},
        h("summary", {}, `${e.name} · ${fmt.n(e.count)} events · ${(e.properties || []).length} properties`),
        h("table", {class: "list"}, h("caption", {class: "sr-only"}, `Properties of ${e.name}`),
          h("thead", {}, h("tr", {}, ["Property", "Types seen", "Conflicts", "Top values"].map((t) => h("th", {scope: "col"}, t)))),
          h("tbody", {}, (e.properties || []).map((p) => h("tr", {}, h("td", {}, p.name), h("td", {}, types(p.types)), h("td", {}, flag(p.types)),
            top(`event=${enc(e.name)}&property=${enc(p.name)}`, `${e.name} ${p.name}`)))))))));
}
