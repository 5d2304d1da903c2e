// The segment builder: rules and criteria (AND of ORs, any nesting),
// invert, trait and event pickers from /api/schema with value
// suggestions, event count/aggregate/window editors, segment references,
// live counts for the whole condition and every criterion, errors at the
// criterion they name, and a JSON view that can be edited too.
import {get, api, enc} from "./api.js";
import {h, mount, field, fmt, debounce, toast} from "./ui.js";
import {ops, opWord, countWord} from "./cond.js";

const valueless = new Set(["exists", "not_exists"]);
const listOps = new Set(["in", "not_in"]);
const durationOps = new Set(["within_last", "not_within_last"]);
const countOps = ["eq", "neq", "gt", "gte", "lt", "lte", "between"];
const aggFns = ["sum", "avg", "min", "max", "distinct"];

export async function builderPage({id, copyOf}, signal) {
  const [schema, {segments}] = await Promise.all([get("/api/schema", {signal}), get("/api/segments", {signal})]);
  let seg = null;
  if (id || copyOf) seg = await get(`/api/segments/${enc(decodeURIComponent(id || copyOf))}`, {signal});
  const editing = !!id;
  const b = new Builder(schema, segments.filter((s) => !editing || s.id !== seg.id), signal);
  b.cond = seg ? structuredClone(seg.condition) : b.starter();

  const name = h("input", {id: "seg-name", type: "text", value: seg ? (copyOf ? `Copy of ${seg.name}` : seg.name) : "", required: true});
  const sid = h("input", {id: "seg-id", type: "text", value: editing ? seg.id : "", disabled: editing, placeholder: "generated when empty", pattern: "[a-zA-Z0-9][a-zA-Z0-9_.:\\-]{0,127}"});
  const saveErr = h("p", {class: "error", role: "alert", id: "save-error"});
  const save = h("button", {type: "submit", class: "primary"}, editing ? "Save changes" : "Save segment");
  const form = h("form", {class: "builder", onsubmit: async (e) => {
    e.preventDefault();
    saveErr.textContent = "";
    save.disabled = true;
    try {
      const body = {name: name.value.trim(), condition: b.cond};
      const out = editing
        ? await api("PUT", `/api/segments/${enc(seg.id)}`, body)
        : await api("POST", "/api/segments", {...body, id: sid.value.trim() || undefined});
      toast(`Saved ${out.name}`);
      location.hash = `#/segments/${enc(out.id)}`;
    } catch (x) {
      saveErr.textContent = x.message + (x.path ? ` (at ${x.path})` : "");
      if (x.path !== undefined && !/^\/(id|name)$/.test(x.path)) b.showError(x.path, x.message);
    } finally {
      save.disabled = false;
    }
  }},
    h("div", {class: "head"}, h("h1", {}, editing ? `Edit ${seg.name}` : "New segment"),
      h("div", {class: "total", "aria-live": "polite"}, h("span", {class: "big", id: "total"}, "…"), " profiles match")),
    h("div", {class: "row"}, field("Name", name), field("Id", sid)),
    b.root,
    h("details", {class: "json"}, h("summary", {}, "JSON view"), b.jsonView),
    h("div", {class: "row"}, save, h("a", {class: "button", href: editing ? `#/segments/${enc(seg.id)}` : "#/segments"}, "Cancel")),
    saveErr,
    b.datalists);
  mount(editing ? `Edit ${seg.name}` : "New segment", form);
  b.render();
}

class Builder {
  constructor(schema, segments, signal) {
    this.schema = schema;
    this.segments = segments;
    this.signal = signal;
    this.root = h("div", {class: "tree"});
    this.jsonText = h("textarea", {rows: 12, spellcheck: "false", "aria-label": "Condition as JSON"});
    this.jsonMsg = h("p", {class: "error", role: "alert"});
    this.jsonText.addEventListener("input", () => {
      try {
        this.cond = JSON.parse(this.jsonText.value);
        this.jsonMsg.textContent = "";
        this.render(false);
      } catch (e) {
        this.jsonMsg.textContent = "Not valid JSON yet: " + e.message;
      }
    });
    this.jsonView = h("div", {}, this.jsonText, this.jsonMsg);
    this.traitTypes = Object.fromEntries((schema.traits || []).map((t) => [t.name, dominant(t.types)]));
    this.events = Object.fromEntries((schema.events || []).map((e) => [e.name, e]));
    this.datalists = h("div", {hidden: true},
      h("datalist", {id: "dl-traits"}, (schema.traits || []).map((t) => h("option", {value: t.name}))),
      h("datalist", {id: "dl-events"}, (schema.events || []).map((e) => h("option", {value: e.name}))));
    // Lists made while rendering (value suggestions, an event's
    // properties) live in dyn, emptied by each render.
    this.dyn = h("div", {});
    this.datalists.append(this.dyn);
    this.query = debounce(() => this.count(), 250);
    this.ctl = null;
    signal.addEventListener("abort", () => { if (this.ctl) this.ctl.abort(); }, {once: true});
  }

  starter() {
    const ev = (this.schema.events || [])[0];
    const leaf = ev ? {event: ev.name} : {all: true};
    return {and: [{or: [leaf]}]};
  }

  // render rebuilds the tree from this.cond (and the JSON view unless the
  // change came from it), then asks for counts.
  render(json = true) {
    this.dyn.replaceChildren();
    this.root.replaceChildren(this.node(this.cond, "", (n) => { this.cond = n; }, 0));
    if (json) this.jsonText.value = JSON.stringify(this.cond, null, 2);
    this.query();
  }

  changed() {
    this.jsonText.value = JSON.stringify(this.cond, null, 2);
    this.query();
  }

  async count() {
    if (this.ctl) this.ctl.abort();
    this.ctl = new AbortController();
    const signal = this.ctl.signal;
    for (const el of this.root.querySelectorAll(".node-error")) el.textContent = "";
    for (const el of this.root.querySelectorAll(".invalid")) el.classList.remove("invalid");
    try {
      const res = await api("POST", "/api/query", {condition: this.cond}, {signal});
      document.getElementById("total").textContent = fmt.n(res.size);
      for (const badge of this.root.querySelectorAll(".count")) badge.textContent = "–";
      for (const c of res.criteria) {
        const badge = this.root.querySelector(`.count[data-path="${CSS.escape(c.path)}"]`);
        if (badge) badge.textContent = fmt.n(c.size);
      }
    } catch (e) {
      if (signal.aborted) return;
      document.getElementById("total").textContent = "?";
      if (e.status === 400) this.showError(e.path || "", e.message);
      else toast(e.message, true);
    }
  }

  // showError puts a message at the deepest node whose path is a prefix
  // of the error's JSON pointer.
  showError(path, msg) {
    let best = null;
    for (const el of this.root.querySelectorAll(".node[data-path]")) {
      const p = el.dataset.path;
      if ((path === p || path.startsWith(p + "/")) && (!best || p.length >= best.dataset.path.length)) best = el;
    }
    best = best || this.root.querySelector(".node");
    if (!best) return;
    best.classList.add("invalid");
    const slot = best.querySelector(":scope > .node-error");
    if (slot) slot.textContent = `${msg}${path ? ` (at ${path})` : ""}`;
  }

  // node renders one condition node at path; set replaces it in its parent.
  node(c, path, set, depth) {
    if (c && c.not !== undefined) {
      const inner = (n) => set(n === undefined ? undefined : {not: n});
      return this.inner(c.not, path + "/not", inner, depth, {inverted: true, unwrap: () => set(c.not)});
    }
    return this.inner(c, path, set, depth, {inverted: false, wrap: (n) => set({not: n})});
  }

  inner(c, path, set, depth, inv) {
    const box = h("div", {class: "node", "data-path": path});
    const invert = h("input", {type: "checkbox", checked: inv.inverted});
    invert.addEventListener("change", () => {
      if (inv.inverted) inv.unwrap(); else inv.wrap(c);
      this.render();
    });
    const invertCtl = h("label", {class: "invert"}, invert, " Invert (not)");
    const remove = depth > 0 ? h("button", {type: "button", class: "link", onclick: () => { set(undefined); this.render(); }}, "Remove") : null;
    const err = h("p", {class: "node-error", role: "alert"});
    if (c && (Array.isArray(c.and) || Array.isArray(c.or))) {
      const kind = c.and ? "and" : "or";
      const list = c[kind];
      const sel = h("select", {"aria-label": "How the criteria below combine"},
        h("option", {value: "and", selected: kind === "and"}, "All of these (AND)"),
        h("option", {value: "or", selected: kind === "or"}, "Any of these (OR)"));
      sel.addEventListener("change", () => {
        const v = sel.value;
        delete c[kind];
        c[v] = list;
        this.render();
      });
      const children = list.map((x, i) => this.node(x, `${path}/${kind}/${i}`, (n) => {
        if (n === undefined) list.splice(i, 1); else list[i] = n;
      }, depth + 1));
      const add = (what) => () => { list.push(this.fresh(what)); this.render(); };
      box.classList.add("group", depth % 2 ? "odd" : "even");
      box.append(
        h("div", {class: "bar"}, h("span", {class: "muted"}, depth === 0 ? "Segment: " : kind === "or" ? "Rule: " : "Group: "), sel, invertCtl, remove),
        err,
        h("div", {class: "children"}, children),
        h("div", {class: "adds"},
          h("button", {type: "button", onclick: add("event")}, "+ Event"),
          h("button", {type: "button", onclick: add("trait")}, "+ Trait"),
          h("button", {type: "button", onclick: add("segment")}, "+ Segment"),
          h("button", {type: "button", onclick: add(kind === "and" ? "or" : "and")}, kind === "and" ? "+ Rule (any of)" : "+ Group (all of)")));
      return box;
    }
    box.classList.add("leaf");
    const badge = h("span", {class: "count", "data-path": path, title: "Profiles matching this criterion alone"}, "…");
    let body;
    let extra = null;
    if (c && c.event !== undefined) [body, extra] = this.event(c, path);
    else if (c && c.trait !== undefined) body = this.trait(c);
    else if (c && c.segment !== undefined) body = this.segmentRef(c);
    else if (c && c.all) body = h("span", {}, "Every profile");
    else body = h("span", {}, "Unknown criterion: edit it in the JSON view");
    box.append(h("div", {class: "bar"}, body, invertCtl, h("span", {class: "badge-wrap"}, badge, " match"), remove), extra || "", err);
    return box;
  }

  fresh(what) {
    const ev = (this.schema.events || [])[0];
    const tr = (this.schema.traits || [])[0];
    switch (what) {
      case "event": return {event: ev ? ev.name : ""};
      case "trait": return {trait: tr ? tr.name : "", op: "exists"};
      case "segment": return {segment: this.segments[0] ? this.segments[0].id : ""};
      case "or": return {or: [this.fresh("event")]};
      case "and": return {and: [this.fresh("trait")]};
    }
    return {all: true};
  }

  trait(c) {
    const name = h("input", {type: "text", value: c.trait, list: "dl-traits", "aria-label": "Trait", class: "name"});
    name.addEventListener("input", () => { c.trait = name.value; this.changed(); });
    return h("span", {class: "crit"}, h("span", {class: "kind"}, "Trait"), name,
      this.test(c, () => this.traitTypes[c.trait], () => `trait=${enc(c.trait)}`, "Trait"));
  }

  // test edits op, value and ignore_case of a trait or property test.
  test(t, type, valuesQuery, what) {
    const wrap = h("span", {class: "test"});
    const draw = () => {
      const op = h("select", {"aria-label": `${what} operator`}, ops.map((o) => h("option", {value: o, selected: o === t.op}, opWord(o))));
      op.addEventListener("change", () => {
        t.op = op.value;
        if (valueless.has(t.op)) delete t.value;
        else t.value = defaultValue(t.op, type());
        if (!["eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "matches"].includes(t.op)) delete t.ignore_case;
        draw();
        this.changed();
      });
      const parts = [op];
      if (!valueless.has(t.op)) parts.push(this.valueEditor(t, type, valuesQuery, what));
      if (["eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "matches"].includes(t.op)) {
        const ic = h("input", {type: "checkbox", checked: !!t.ignore_case});
        ic.addEventListener("change", () => { if (ic.checked) t.ignore_case = true; else delete t.ignore_case; this.changed(); });
        parts.push(h("label", {class: "ic"}, ic, " any case"));
      }
      wrap.replaceChildren(...parts);
    };
    draw();
    return wrap;
  }

  valueEditor(t, type, valuesQuery, what) {
    const input = (v, label, onv, suggest) => {
      const el = h("input", {type: "text", value: v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v), "aria-label": label, class: "value"});
      el.addEventListener("input", () => { onv(el.value); this.changed(); });
      if (suggest) this.suggest(el, valuesQuery);
      return el;
    };
    if (t.op === "between") {
      const v = Array.isArray(t.value) ? t.value : ["", ""];
      t.value = v;
      return h("span", {},
        input(v[0], `${what} lower bound`, (s) => { v[0] = coerce(s, type(), t.op); }), " and ",
        input(v[1], `${what} upper bound`, (s) => { v[1] = coerce(s, type(), t.op); }));
    }
    if (t.op === "near") {
      const v = t.value && typeof t.value === "object" ? t.value : {lat: 0, lon: 0, radius_km: 10};
      t.value = v;
      return h("span", {}, ["lat", "lon", "radius_km"].map((k) => input(v[k], `${what} ${k}`, (s) => { v[k] = Number(s); })));
    }
    if (listOps.has(t.op)) {
      const shown = Array.isArray(t.value) ? t.value.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ") : "";
      const el = input(shown, `${what} values, comma-separated`, (s) => {
        t.value = s.split(",").map((x) => x.trim()).filter((x) => x !== "").map((x) => coerce(x, type(), t.op));
      }, true);
      return el;
    }
    if (durationOps.has(t.op)) return input(t.value, `${what} duration such as 7d`, (s) => { t.value = s.trim(); });
    return input(t.value, `${what} value`, (s) => { t.value = coerce(s, type(), t.op); }, true);
  }

  // suggest fills a datalist with the most frequent values as you type.
  suggest(el, valuesQuery) {
    const dl = h("datalist", {id: "dl-" + Math.random().toString(36).slice(2)});
    el.setAttribute("list", dl.id);
    const fill = debounce(async () => {
      const q = valuesQuery();
      if (!q || /=$|=&/.test(q)) return;
      try {
        const res = await get(`/api/schema/values?${q}&limit=10`, {signal: this.signal});
        dl.replaceChildren(...(res.values || []).map((v) => h("option", {value: typeof v.value === "string" ? v.value : JSON.stringify(v.value)}, `${fmt.n(v.count)}`)));
      } catch { /* suggestions are optional */ }
    }, 200);
    el.addEventListener("focus", fill);
    el.addEventListener("input", fill);
    this.dyn.append(dl);
  }

  event(c, path) {
    const name = h("input", {type: "text", value: c.event, list: "dl-events", "aria-label": "Event", class: "name"});
    name.addEventListener("input", () => { c.event = name.value; this.changed(); });
    const props = () => ((this.events[c.event] || {}).properties || []);
    const propList = h("datalist", {id: "dl-p-" + path.replace(/\W/g, "_")}, props().map((p) => h("option", {value: p.name})));
    this.dyn.append(propList);
    const where = h("div", {class: "where"});
    const drawWhere = () => {
      where.replaceChildren(...(c.where || []).map((p, i) => {
        const prop = h("input", {type: "text", value: p.property, list: propList.id, "aria-label": "Property", class: "name"});
        prop.addEventListener("input", () => { p.property = prop.value; this.changed(); });
        const ptype = () => {
          const f = props().find((x) => x.name === p.property);
          return f ? dominant(f.types) : undefined;
        };
        return h("div", {class: "pred"}, h("span", {class: "muted"}, "where "), prop,
          this.test(p, ptype, () => `event=${enc(c.event)}&property=${enc(p.property)}`, "Property"),
          h("button", {type: "button", class: "link", onclick: () => {
            c.where.splice(i, 1);
            if (!c.where.length) delete c.where;
            drawWhere();
            this.changed();
          }}, "Remove filter"));
      }));
      where.append(h("button", {type: "button", class: "link", onclick: () => {
        const p0 = props()[0];
        (c.where = c.where || []).push({property: p0 ? p0.name : "", op: "exists"});
        drawWhere();
        this.changed();
      }}, "+ Property filter"));
    };
    drawWhere();

    // count
    const cop = h("select", {"aria-label": "How many times"},
      h("option", {value: "", selected: !c.count}, c.aggregate ? "any number of times" : "at least once"),
      countOps.map((o) => h("option", {value: o, selected: c.count && c.count.op === o}, o === "between" ? "between" : countWord(o))));
    const cval = h("span", {});
    const drawCount = () => {
      if (!c.count) { cval.replaceChildren(); return; }
      const num = (v, label, onv) => {
        const el = h("input", {type: "number", min: 0, step: 1, value: v, "aria-label": label, class: "small"});
        el.addEventListener("input", () => { onv(Number(el.value)); this.changed(); });
        return el;
      };
      if (c.count.op === "between") {
        const v = Array.isArray(c.count.value) ? c.count.value : [1, 3];
        c.count.value = v;
        cval.replaceChildren(num(v[0], "Fewest times", (n) => { v[0] = n; }), " and ", num(v[1], "Most times", (n) => { v[1] = n; }), " times");
      } else {
        if (typeof c.count.value !== "number") c.count.value = 1;
        cval.replaceChildren(num(c.count.value, "Times", (n) => { c.count.value = n; }), " times");
      }
    };
    cop.addEventListener("change", () => {
      if (!cop.value) delete c.count;
      else c.count = {op: cop.value, value: cop.value === "between" ? [1, 3] : c.count && typeof c.count.value === "number" ? c.count.value : 1};
      drawCount();
      this.changed();
    });
    drawCount();

    // aggregate
    const afn = h("select", {"aria-label": "Aggregate"}, h("option", {value: "", selected: !c.aggregate}, "no aggregate"),
      aggFns.map((f) => h("option", {value: f, selected: c.aggregate && c.aggregate.fn === f}, f)));
    const aggBox = h("span", {});
    const drawAgg = () => {
      if (!c.aggregate) { aggBox.replaceChildren(); return; }
      const a = c.aggregate;
      const prop = h("input", {type: "text", value: a.property, list: propList.id, "aria-label": "Aggregated property", class: "name"});
      prop.addEventListener("input", () => { a.property = prop.value; this.changed(); });
      aggBox.replaceChildren(" of ", prop, " ", this.test(a, () => "number", () => "", "Aggregate"));
    };
    afn.addEventListener("change", () => {
      if (!afn.value) delete c.aggregate;
      else c.aggregate = {...(c.aggregate || {property: (props()[0] || {}).name || "", op: "gt", value: 0}), fn: afn.value};
      drawAgg();
      this.changed();
    });
    drawAgg();

    // window
    const kind = c.within ? (c.within.last ? "last" : "range") : "";
    const wsel = h("select", {"aria-label": "When"},
      h("option", {value: "", selected: kind === ""}, "ever"),
      h("option", {value: "last", selected: kind === "last"}, "in the last"),
      h("option", {value: "range", selected: kind === "range"}, "between dates"));
    const wbox = h("span", {});
    const drawWin = () => {
      if (!c.within) { wbox.replaceChildren(); return; }
      if (c.within.last !== undefined) {
        const el = h("input", {type: "text", value: c.within.last, "aria-label": "Window such as 7d, 12h, 2w", class: "small"});
        el.addEventListener("input", () => { c.within.last = el.value.trim(); this.changed(); });
        wbox.replaceChildren(el);
        return;
      }
      const dt = (v, label, k) => {
        const el = h("input", {type: "datetime-local", value: v ? v.slice(0, 16) : "", "aria-label": label});
        el.addEventListener("input", () => { c.within[k] = el.value ? el.value + ":00Z" : ""; this.changed(); });
        return el;
      };
      wbox.replaceChildren(dt(c.within.from, "From (UTC)", "from"), " and ", dt(c.within.to, "To (UTC)", "to"), " UTC");
    };
    wsel.addEventListener("change", () => {
      if (!wsel.value) delete c.within;
      else if (wsel.value === "last") c.within = {last: "7d"};
      else {
        const now = new Date();
        c.within = {from: new Date(now - 7 * 86400e3).toISOString().slice(0, 16) + ":00Z", to: now.toISOString().slice(0, 16) + ":00Z"};
      }
      drawWin();
      this.changed();
    });
    drawWin();

    return [
      h("span", {class: "crit"}, h("span", {class: "kind"}, "Event"), name, cop, cval, wsel, wbox),
      h("div", {class: "event-more"}, h("div", {class: "agg"}, afn, aggBox), where)];
  }

  segmentRef(c) {
    const sel = h("select", {"aria-label": "Segment"},
      this.segments.map((s) => h("option", {value: s.id, selected: s.id === c.segment}, `${s.name} (${s.id})`)),
      this.segments.some((s) => s.id === c.segment) ? null : h("option", {value: c.segment, selected: true}, c.segment || "(choose)"));
    sel.addEventListener("change", () => { c.segment = sel.value; this.changed(); });
    return h("span", {class: "crit"}, h("span", {class: "kind"}, "In segment"), sel);
  }
}

// dominant is the most frequent type of a schema field.
function dominant(types) {
  let best, n = -1;
  for (const [t, c] of Object.entries(types || {})) if (c > n) { best = t; n = c; }
  return best;
}

function defaultValue(op, type) {
  if (listOps.has(op)) return [];
  if (durationOps.has(op)) return "7d";
  if (op === "between") return type === "number" ? [0, 10] : ["", ""];
  if (op === "near") return {lat: 51.5, lon: -0.12, radius_km: 10};
  if (op === "matches") return "";
  return type === "number" ? 0 : "";
}

// coerce turns typed text into the JSON value the field's type asks for.
function coerce(s, type, op) {
  const t = s.trim();
  if (type === "boolean" && (t === "true" || t === "false")) return t === "true";
  if (type === "number" && t !== "" && !isNaN(Number(t))) return Number(t);
  if (["gt", "gte", "lt", "lte", "between"].includes(op) && type !== "string" && type !== "datetime" && t !== "" && !isNaN(Number(t))) return Number(t);
  return s;
}
