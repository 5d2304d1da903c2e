// The segment list and a segment's page.
import {get, api, stream, enc} from "./api.js";
import {h, mount, field, fmt, sparkline, chart, toast} from "./ui.js";
import {describeAt} from "./cond.js";

const PAGE = 25;

export async function segmentsPage(signal) {
  const {segments} = await get("/api/segments", {signal});
  const filter = h("input", {type: "search", placeholder: "name or id"});
  const body = h("tbody");
  const status = h("p", {class: "error", role: "alert"});
  const pager = h("div", {class: "pager"});
  let page = 0;

  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = segments.filter((s) => !q || s.id.toLowerCase().includes(q) || s.name.toLowerCase().includes(q));
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    body.replaceChildren(...rows.slice(page * PAGE, (page + 1) * PAGE).map(row));
    pager.replaceChildren(
      h("button", {type: "button", disabled: page === 0, onclick: () => { page--; draw(); }}, "Previous"),
      h("span", {}, ` Page ${page + 1} of ${pages} (${rows.length} segments) `),
      h("button", {type: "button", disabled: page >= pages - 1, onclick: () => { page++; draw(); }}, "Next"));
  };

  const row = (s) => {
    const spark = h("td", {class: "spark-cell"});
    const moved = h("td", {}, "–");
    get(`/api/segments/${enc(s.id)}/history?step=1h`, {signal}).then(({points}) => {
      spark.replaceChildren(sparkline(points.map((p) => p.size), `Size of ${s.name} over the last day`));
      // The last step in which the size moved (hour resolution).
      for (let i = points.length - 1; i > 0; i--) {
        if (points[i].size !== points[i - 1].size) {
          moved.replaceChildren(i === points.length - 1 ? "this hour" : fmt.ago(points[i].at));
          return;
        }
      }
      moved.replaceChildren(points.length && points[0].size !== 0 ? "over a day ago" : "–");
    }).catch(() => {});
    const del = h("button", {type: "button", class: "danger", "aria-label": `Delete ${s.name}`}, "Delete");
    del.addEventListener("click", async () => {
      if (del.dataset.armed !== "1") {
        del.dataset.armed = "1";
        del.textContent = "Confirm delete";
        return;
      }
      status.textContent = "";
      try {
        await api("DELETE", `/api/segments/${enc(s.id)}`);
        segments.splice(segments.indexOf(s), 1);
        toast(`Deleted ${s.name}`);
        draw();
      } catch (e) {
        status.textContent = e.status === 409
          ? `${s.name} cannot be deleted while other segments refer to it: ${e.message}. Edit those segments to drop the reference first.`
          : e.message;
        del.dataset.armed = "";
        del.textContent = "Delete";
      }
    });
    return h("tr", {},
      h("td", {}, h("a", {href: `#/segments/${enc(s.id)}`}, s.name), h("div", {class: "muted"}, s.id)),
      h("td", {class: "num", "data-size": s.id}, fmt.n(s.size)),
      h("td", {}, s.status === "ready" ? "ready" : h("span", {}, "building ", h("progress", {max: 1, value: s.progress, "aria-label": `Build progress of ${s.name}`}))),
      spark,
      moved,
      h("td", {}, h("span", {title: fmt.time(s.updated_at)}, fmt.ago(s.updated_at))),
      h("td", {class: "actions"},
        h("a", {href: `#/segments/${enc(s.id)}/edit`, "aria-label": `Edit ${s.name}`}, "Edit"), " ",
        h("a", {href: `#/segments/${enc(s.id)}/duplicate`, "aria-label": `Duplicate ${s.name}`}, "Duplicate"), " ",
        del));
  };

  filter.addEventListener("input", () => { page = 0; draw(); });
  mount("Segments",
    h("div", {class: "head"}, h("h1", {}, "Segments"), h("a", {class: "button primary", href: "#/new"}, "New segment")),
    field("Filter", filter),
    status,
    segments.length === 0
      ? h("p", {}, "No segment yet. ", h("a", {href: "#/new"}, "Build the first one."))
      : h("table", {class: "list"},
        h("caption", {class: "sr-only"}, "Segments with size, status, size over the last day, last size change and last edit"),
        h("thead", {}, h("tr", {}, ["Segment", "Size", "Status", "Last day", "Size moved", "Edited", "Actions"].map((t) => h("th", {scope: "col"}, t)))),
        body),
    pager);
  draw();
}

export async function segmentPage(id, signal) {
  id = decodeURIComponent(id);
  const s = await get(`/api/segments/${enc(id)}`, {signal});
  const size = h("span", {id: "segment-size"}, fmt.n(s.size));
  const chartBox = h("div", {class: "chart-box"});
  const step = h("select", {}, h("option", {value: "1h"}, "Last 2 days, by hour"), h("option", {value: "1d"}, "Last 30 days, by day"));
  const drawChart = async () => {
    const from = new Date(Date.now() - (step.value === "1h" ? 2 : 30) * 86400e3).toISOString().replace(/\.\d+Z$/, "Z");
    const {points} = await get(`/api/segments/${enc(id)}/history?step=${step.value}&from=${from}`, {signal});
    chartBox.replaceChildren(chart(points, `Size of ${s.name} over time`));
  };
  step.addEventListener("change", drawChart);

  const cond = s.condition;
  const crit = h("table", {class: "list"},
    h("caption", {class: "sr-only"}, "How many profiles match each criterion alone"),
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Criterion"), h("th", {scope: "col"}, "Path"), h("th", {scope: "col"}, "Profiles"))),
    h("tbody", {}, (s.criteria || []).map((c) => h("tr", {},
      h("td", {}, describeAt(cond, c.path)), h("td", {}, h("code", {}, c.path || "(whole)")), h("td", {class: "num"}, fmt.n(c.size))))));

  mount(s.name,
    h("div", {class: "head"},
      h("h1", {}, s.name),
      h("div", {},
        h("a", {class: "button", href: `#/segments/${enc(id)}/edit`}, "Edit"), " ",
        h("a", {class: "button", href: `#/segments/${enc(id)}/duplicate`}, "Duplicate"))),
    h("p", {class: "stats"}, h("span", {class: "big"}, size), " members · ", s.status,
      s.status === "building" ? ` (${Math.round(s.progress * 100)}%)` : "", " · id ", h("code", {}, s.id), " · edited ", fmt.ago(s.updated_at)),
    h("section", {"aria-labelledby": "h-size"}, h("h2", {id: "h-size"}, "Size over time"), field("Range", step), chartBox),
    h("section", {"aria-labelledby": "h-crit"}, h("h2", {id: "h-crit"}, "Criteria"), crit,
      h("details", {}, h("summary", {}, "Condition (JSON)"), h("pre", {}, JSON.stringify(cond, null, 2)))),
    h("div", {class: "cols"},
      h("section", {"aria-labelledby": "h-members"}, h("h2", {id: "h-members"}, "Members"), members(id, s, signal)),
      h("section", {"aria-labelledby": "h-feed"}, h("h2", {id: "h-feed"}, "Live changes"), feed(id, size, signal))));
  drawChart();
}

function members(id, s, signal) {
  const list = h("ul", {class: "members", "aria-live": "polite"});
  const more = h("button", {type: "button"}, "Next page");
  const first = h("button", {type: "button"}, "First page");
  const out = h("p", {role: "status"});
  let cursor = null;
  const load = async (from) => {
    const q = `/api/segments/${enc(id)}/members?limit=50` + (from ? `&cursor=${enc(from)}` : "");
    const page = await get(q, {signal});
    list.replaceChildren(...page.members.map((m) => h("li", {}, h("a", {href: `#/users/${enc(m)}`}, m))));
    if (!page.members.length) list.append(h("li", {}, "No members."));
    cursor = page.next_cursor;
    more.disabled = !cursor;
  };
  more.addEventListener("click", () => load(cursor));
  first.addEventListener("click", () => load(null));
  const search = h("input", {type: "search", placeholder: "user id"});
  const find = h("form", {class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const u = search.value.trim();
    if (!u) return;
    out.replaceChildren();
    try {
      const user = await get(`/api/users/${enc(u)}`, {signal});
      const inIt = user.segments.includes(id);
      out.replaceChildren(h("a", {href: `#/users/${enc(user.id)}`}, user.id), inIt ? " is a member." : " is not a member.");
    } catch (x) {
      out.textContent = x.status === 404 ? `No user ${u}.` : x.message;
    }
  }}, field("Find a member", search), h("button", {type: "submit"}, "Find"));
  const csv = h("button", {type: "button", id: "download-csv"}, "Download CSV");
  csv.addEventListener("click", async () => {
    csv.disabled = true;
    try {
      const ids = [];
      let c = null;
      do {
        const page = await get(`/api/segments/${enc(id)}/members?limit=10000` + (c ? `&cursor=${enc(c)}` : ""), {signal});
        ids.push(...page.members);
        c = page.next_cursor;
      } while (c);
      const quote = (x) => (/[",\n\r]/.test(x) ? `"${x.replace(/"/g, '""')}"` : x);
      const blob = new Blob(["user_id\n" + ids.map(quote).join("\n") + "\n"], {type: "text/csv"});
      const a = h("a", {href: URL.createObjectURL(blob), download: `${id}-members.csv`});
      document.body.append(a);
      a.click();
      a.remove();
      toast(`${ids.length} members downloaded`);
    } catch (e) {
      toast(e.message, true);
    } finally {
      csv.disabled = false;
    }
  });
  load(null).catch((e) => { out.textContent = e.message; });
  return h("div", {}, find, out, list, h("div", {class: "pager"}, first, " ", more, " ", csv));
}

function feed(id, size, signal) {
  const list = h("ol", {class: "feed", "aria-live": "polite", "aria-label": "Membership changes, newest first"});
  const line = (c) => h("li", {class: c.change},
    h("time", {datetime: c.at}, fmt.time(c.at)), " ",
    h("strong", {}, c.change), " ", h("a", {href: `#/users/${enc(c.user)}`}, c.user),
    h("span", {class: "muted"}, ` (${c.reason}, #${c.seq})`));
  (async () => {
    const head = await get(`/api/changes?since=0&limit=1&segment=${enc(id)}`, {signal});
    const last = head.last || 0;
    const recent = await get(`/api/changes?since=${Math.max(0, last - 5000)}&limit=1000&segment=${enc(id)}`, {signal});
    for (const c of recent.changes.slice(-20)) list.prepend(line(c));
    if (!list.children.length) list.append(h("li", {class: "muted", id: "feed-empty"}, "Waiting for changes…"));
    await stream(`/api/changes?since=${last}&segment=${enc(id)}`, (_, c) => {
      const empty = list.querySelector("#feed-empty");
      if (empty) empty.remove();
      list.prepend(line(c));
      while (list.children.length > 100) list.lastChild.remove();
      const n = Number(size.textContent.replace(/,/g, "")) + (c.change === "enter" ? 1 : -1);
      size.textContent = fmt.n(n);
    }, signal);
  })().catch((e) => { if (!signal.aborted) list.append(h("li", {class: "error"}, e.message)); });
  return list;
}
