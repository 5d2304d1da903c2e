// Small DOM helpers, formatting and SVG charts.

// h builds an element: h("a", {href: "#/x", class: "c", onclick: fn}, "text", child…).
export function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// mount replaces the main area's content and moves focus to it.
export function mount(title, ...children) {
  const main = document.getElementById("main");
  main.replaceChildren();
  append(main, children);
  document.title = title + " · Cohort";
  for (const a of document.querySelectorAll("#nav a")) {
    const cur = location.hash.startsWith(a.getAttribute("href"));
    if (cur) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  return main;
}

let uid = 0;
// field is a labelled control: field("Name", h("input", {...})).
export function field(label, control, hint) {
  const id = control.id || (control.id = "f" + ++uid);
  return h("div", {class: "field"}, h("label", {for: id}, label), control, hint ? h("small", {}, hint) : null);
}

export function toast(msg, bad) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = bad ? "show bad" : "show";
  toast.at = Date.now();
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 4000);
}

// staleToast hides a message older than a second: it was about an earlier
// page (one shown just before a navigation stays).
export function staleToast() {
  if (Date.now() - (toast.at || 0) > 1000) document.getElementById("toast").className = "";
}

export const fmt = {
  n: (x) => (x === undefined || x === null ? "–" : Number(x).toLocaleString("en")),
  time: (s) => (s ? new Date(s).toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "–"),
  ago(s) {
    if (!s) return "–";
    const d = (Date.now() - new Date(s).getTime()) / 1000;
    if (d < 0) return "in " + fmt.span(-d);
    return fmt.span(d) + " ago";
  },
  span(d) {
    if (d < 60) return Math.round(d) + " s";
    if (d < 3600) return Math.round(d / 60) + " min";
    if (d < 172800) return Math.round(d / 3600) + " h";
    return Math.round(d / 86400) + " d";
  },
  json: (v) => JSON.stringify(v),
};

// sparkline draws a series of numbers as a small line.
export function sparkline(values, label) {
  const w = 120, ht = 28;
  const svg = h("svg:svg", {width: w, height: ht, viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": label, class: "spark"});
  if (values.length < 2) return svg;
  const max = Math.max(...values), min = Math.min(...values);
  const y = (v) => (max === min ? ht / 2 : ht - 3 - ((v - min) / (max - min)) * (ht - 6));
  const pts = values.map((v, i) => `${((i / (values.length - 1)) * (w - 2) + 1).toFixed(1)},${y(v).toFixed(1)}`);
  svg.append(h("svg:polyline", {points: pts.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5}));
  return svg;
}

// chart draws a size series ({at, size}) with axes.
export function chart(points, label) {
  const w = 720, ht = 220, l = 60, b = 28, t = 10, r = 10;
  const svg = h("svg:svg", {viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": label, class: "chart"});
  if (!points.length) return svg;
  const xs = points.map((p) => new Date(p.at).getTime());
  const ys = points.map((p) => p.size);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const y1 = Math.max(...ys, 1);
  const X = (x) => l + ((x - x0) / (x1 - x0)) * (w - l - r);
  const Y = (y) => ht - b - (y / y1) * (ht - b - t);
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(y1 * f);
    svg.append(h("svg:line", {x1: l, x2: w - r, y1: Y(v), y2: Y(v), class: "grid"}));
    svg.append(h("svg:text", {x: l - 6, y: Y(v) + 4, "text-anchor": "end"}, fmt.n(v)));
  }
  [x0, (x0 + x1) / 2, x1].forEach((x, i) => {
    const anchor = ["start", "middle", "end"][i];
    svg.append(h("svg:text", {x: X(x), y: ht - 8, "text-anchor": anchor}, new Date(x).toISOString().slice(5, 16).replace("T", " ")));
  });
  // A step line: the size holds until the next point.
  let d = "";
  points.forEach((p, i) => {
    const px = X(xs[i]), py = Y(p.size);
    d += i === 0 ? `M${px},${py}` : `H${px}V${py}`;
  });
  svg.append(h("svg:path", {d, fill: "none", stroke: "currentColor", "stroke-width": 2}));
  return svg;
}

// debounce returns fn delayed until calls pause for ms.
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
