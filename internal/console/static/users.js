// Users: find one, see its profile, events and segments, and ask why it is
// in or out of a segment.
import {get, enc} from "./api.js";
import {h, mount, field, fmt} from "./ui.js";
import {describeAt} from "./cond.js";

export async function usersPage(signal) {
  const id = h("input", {type: "search", required: true, placeholder: "userId or anonymousId"});
  const err = h("p", {class: "error", role: "alert"});
  mount("Users",
    h("h1", {}, "Users"),
    h("form", {class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      try {
        const u = await get(`/api/users/${enc(id.value.trim())}`, {signal});
        location.hash = `#/users/${enc(u.id)}`;
      } catch (x) {
        err.textContent = x.status === 404 ? `No user ${id.value.trim()}.` : x.message;
      }
    }}, field("User id", id), h("button", {type: "submit", class: "primary"}, "Open")),
    err);
  id.focus();
}

export async function userPage(rawID, signal) {
  const id = decodeURIComponent(rawID);
  const [u, ev, {segments}] = await Promise.all([
    get(`/api/users/${enc(id)}`, {signal}),
    get(`/api/users/${enc(id)}/events?limit=50`, {signal}),
    get("/api/segments", {signal}),
  ]);
  const names = Object.fromEntries(segments.map((s) => [s.id, s]));
  const traits = Object.entries(u.traits || {}).sort(([a], [b]) => a.localeCompare(b));
  const pick = h("select", {}, segments.map((s) => h("option", {value: s.id}, `${s.name} (${s.id})`)));
  if (u.segments.length) pick.value = u.segments[0];
  const out = h("div", {id: "explain", "aria-live": "polite"});
  const explain = async () => {
    if (!pick.value) return;
    out.replaceChildren(h("p", {}, "Evaluating…"));
    try {
      const x = await get(`/api/users/${enc(u.id)}/explain?segment=${enc(pick.value)}`, {signal});
      const cond = names[pick.value] ? names[pick.value].condition : null;
      out.replaceChildren(
        h("p", {class: "verdict " + (x.member ? "in" : "out"), id: "verdict"},
          h("strong", {}, x.member ? "Member" : "Not a member"), ` of ${pick.value}`,
          x.matches !== x.member ? h("span", {}, ` (the condition now says ${x.matches ? "in" : "out"}; a re-evaluation is pending)`) : "",
          x.next_change_at ? h("span", {}, ` · the next time-based change is due ${fmt.time(x.next_change_at)} (${fmt.ago(x.next_change_at)})`) : ""),
        h("table", {class: "list"},
          h("caption", {class: "sr-only"}, "Each criterion, what it saw for this user and whether it held"),
          h("thead", {}, h("tr", {}, ["Criterion", "Path", "Saw", "Held"].map((t) => h("th", {scope: "col"}, t)))),
          h("tbody", {}, x.leaves.map((l) => h("tr", {class: l.matched ? "held" : "failed"},
            h("td", {}, cond ? describeAt(cond, l.path) : ""),
            h("td", {}, h("code", {}, l.path || "(whole)")),
            h("td", {}, saw(l)),
            h("td", {}, l.matched ? "✓ yes" : "✗ no"))))));
    } catch (e) {
      out.replaceChildren(h("p", {class: "error", role: "alert"}, e.message));
    }
  };
  pick.addEventListener("change", explain);
  mount(u.id,
    h("h1", {}, u.id),
    h("p", {class: "muted"}, "ids: ", u.ids.join(", "), " · created ", fmt.time(u.created_at), " · updated ", fmt.ago(u.updated_at)),
    h("div", {class: "cols"},
      h("section", {"aria-labelledby": "h-traits"}, h("h2", {id: "h-traits"}, "Traits"),
        traits.length ? h("table", {class: "list"}, h("caption", {class: "sr-only"}, "Traits"),
          h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Trait"), h("th", {scope: "col"}, "Value"))),
          h("tbody", {}, traits.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, h("code", {}, fmt.json(v)))))))
          : h("p", {}, "No traits.")),
      h("section", {"aria-labelledby": "h-segs"}, h("h2", {id: "h-segs"}, "Segments"),
        u.segments.length ? h("ul", {}, u.segments.map((s) => h("li", {}, h("a", {href: `#/segments/${enc(s)}`}, names[s] ? names[s].name : s))))
          : h("p", {}, "In no segment."))),
    h("section", {"aria-labelledby": "h-explain"}, h("h2", {id: "h-explain"}, "Explain"),
      h("form", {class: "inline", onsubmit: (e) => { e.preventDefault(); explain(); }}, field("Segment", pick), h("button", {type: "submit"}, "Explain")),
      out),
    h("section", {"aria-labelledby": "h-events"}, h("h2", {id: "h-events"}, "Recent events"),
      ev.events.length ? h("table", {class: "list"}, h("caption", {class: "sr-only"}, "The latest events, newest first"),
        h("thead", {}, h("tr", {}, ["Time", "Event", "Properties"].map((t) => h("th", {scope: "col"}, t)))),
        h("tbody", {}, ev.events.slice().reverse().map((e) => h("tr", {},
          h("td", {}, fmt.time(e.timestamp)), h("td", {}, e.event), h("td", {}, h("code", {}, fmt.json(e.properties)))))))
        : h("p", {}, "No events.")));
  if (segments.length) explain();
}

function saw(l) {
  if (l.count !== undefined && l.count !== null) {
    return l.value === l.count ? `${fmt.n(l.count)} events` : `${l.value === null ? "no value" : fmt.json(l.value)} over ${fmt.n(l.count)} events`;
  }
  return l.value === null || l.value === undefined ? "(absent)" : fmt.json(l.value);
}

