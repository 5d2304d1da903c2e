// Condition helpers: leaves in the server's order, with JSON pointers, and
// a sentence for each leaf.

// leaves lists {path, node} for every leaf, depth first, as the server's
// criteria do.
export function leaves(c, path = "", out = []) {
  if (!c || typeof c !== "object") return out;
  if (Array.isArray(c.and)) c.and.forEach((x, i) => leaves(x, `${path}/and/${i}`, out));
  else if (Array.isArray(c.or)) c.or.forEach((x, i) => leaves(x, `${path}/or/${i}`, out));
  else if (c.not !== undefined) leaves(c.not, `${path}/not`, out);
  else out.push({path, node: c});
  return out;
}

const opWords = {
  eq: "is", neq: "is not", in: "is one of", not_in: "is none of", contains: "contains",
  not_contains: "does not contain", starts_with: "starts with", ends_with: "ends with",
  matches: "matches", gt: ">", gte: "≥", lt: "<", lte: "≤", between: "is between",
  exists: "exists", not_exists: "does not exist", within_last: "is within the last",
  not_within_last: "is not within the last", near: "is near",
};

export const ops = Object.keys(opWords);
export const opWord = (op) => opWords[op] || op;

function val(v) {
  if (Array.isArray(v)) return v.map(val).join(", ");
  if (v && typeof v === "object") return "lat " + v.lat + ", lon " + v.lon + " within " + v.radius_km + " km";
  return typeof v === "string" ? `"${v}"` : String(v);
}

function test(name, t) {
  if (t.op === "exists" || t.op === "not_exists") return `${name} ${opWord(t.op)}`;
  if (t.op === "between" && Array.isArray(t.value)) return `${name} is between ${val(t.value[0])} and ${val(t.value[1])}`;
  return `${name} ${opWord(t.op)} ${val(t.value)}${t.ignore_case ? " (any case)" : ""}`;
}

// describe says what one leaf asks, in words.
export function describe(n) {
  if (!n) return "";
  if (n.all) return "every profile";
  if (n.segment !== undefined) return `in segment ${n.segment}`;
  if (n.trait !== undefined) return test(n.trait, n);
  if (n.event !== undefined) {
    let s = `did "${n.event}"`;
    if (n.where && n.where.length) s += " where " + n.where.map((p) => test(p.property, p)).join(" and ");
    if (n.count) {
      s += n.count.op === "between" ? ` between ${n.count.value[0]} and ${n.count.value[1]} times` : ` ${countWord(n.count.op)} ${n.count.value} times`;
    }
    if (n.aggregate) s += `, ${n.aggregate.fn} of ${n.aggregate.property} ${opWord(n.aggregate.op)} ${val(n.aggregate.value)}`;
    if (n.within && n.within.last) s += ` in the last ${n.within.last}`;
    if (n.within && n.within.from) s += ` from ${n.within.from} to ${n.within.to}`;
    return s;
  }
  return JSON.stringify(n);
}

const countWords = {eq: "exactly", neq: "not exactly", gt: "more than", gte: "at least", lt: "fewer than", lte: "at most"};
export const countWord = (op) => countWords[op] || op;

// describeAt says what the leaf at path asks, noting when a "not" above
// it inverts it.
export function describeAt(cond, path) {
  const s = describe(at(cond, path));
  return path.endsWith("/not") || path.includes("/not/") ? s + " (inverted: the condition wants this false)" : s;
}

// at returns the node a JSON pointer names.
export function at(c, path) {
  let n = c;
  for (const part of path.split("/").slice(1)) {
    if (n === undefined || n === null) return undefined;
    n = n[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return n;
}
