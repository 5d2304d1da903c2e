// Package condition owns Cohort's condition language: its parsed form
// (Node), its validation (Parse, CheckCycles) and the meaning of every
// operator on a single value (Test.Match, Cmp.Match, Window.Contains,
// AggState). This comment is the project's reference for that meaning;
// every evaluator (the bitmap evaluator, the real-time engine, the oracle)
// implements exactly what is written here.
//
// # Forms
//
// A condition is one JSON object of one of these forms (docs/conditions.md
// tells the language to users, with examples):
//
//	{"and": [C, ...]}  {"or": [C, ...]}  {"not": C}  {"all": true}
//	{"segment": "id"}
//	{"trait": NAME, "op": OP, "value": V, "ignore_case"?: bool}
//	{"event": NAME, "where"?: [P, ...], "count"?: CNT, "aggregate"?: AGG, "within"?: WIN}
//
// and, or: every / at least one operand holds; they must not be empty.
// not: the operand does not hold. all: every profile of the workspace.
// not and all range over every profile, so {"not": C} holds for exactly
// the profiles C does not hold for. segment: the profile is a member of
// the referenced segment (evaluated at the same instant); references must
// not form cycles and must name existing segments (CheckCycles).
//
// The leaves are all, segment, trait and event nodes; Node.Leaves lists
// them in document order, which is the order of the "criteria" of the API.
//
// # Looking values up
//
// A trait NAME and a property NAME are resolved with model.Lookup: the
// literal key first, then, if there is none, as a dotted path into nested
// objects ("address.city"). A trait or property is "present" when the
// lookup finds it, even when its value is JSON null.
//
// # Operand types
//
// An operand is classified once, at parse time:
//
//   - a JSON number is a number (float64);
//   - a JSON string that is an RFC 3339 instant (model.ParseTime, with or
//     without fractional seconds) is a date-time;
//   - any other JSON string is a string;
//   - true/false is a boolean.
//
// Comparisons apply only to values of the operand's type; a value of
// another type never satisfies a positive operator:
//
//   - number operand: the value must be a JSON number (float64,
//     json.Number or a Go integer type; a json.Number too large for float64
//     counts as ±Inf); compared numerically. The string "5" is not 5.
//   - date-time operand: the value must be a string that is an RFC 3339
//     instant; both are compared as instants, so
//     "2024-01-01T00:00:00+01:00" equals "2023-12-31T23:00:00Z" and is
//     before "2023-12-31T23:30:00Z".
//   - string operand: the value must be a JSON string (any string,
//     including one that looks like a date-time); eq compares bytes, gt,
//     gte, lt and lte compare byte-wise lexicographically (strings.Compare).
//   - boolean operand (eq, neq, in, not_in, contains, not_contains only):
//     the value must be a JSON boolean.
//
// Arrays and objects are never equal to anything; only contains looks
// inside arrays, and only near reads objects.
//
// # Operators
//
// v is the trait's or property's value; "missing" means it is not present.
// No positive operator matches a missing value.
//
//	eq V            v equals V (by V's type, above).
//	in [V, ...]     v equals at least one element. Elements may mix types;
//	                each is compared by its own type. Must not be empty.
//	contains V      v is a string and V is a string or date-time operand:
//	                V's text is a substring of v ("" is in every string);
//	                or v is an array with an element that equals V (as eq).
//	starts_with S   v is a string with prefix S.
//	ends_with S     v is a string with suffix S.
//	matches RE      v is a string in which the RE2 expression RE matches
//	                somewhere (unanchored; use ^ and $ to anchor).
//	gt, gte, lt, lte V
//	                v >, ≥, <, ≤ V (by V's type; V is a number or string).
//	between [lo, hi]
//	                lo ≤ v ≤ hi, both bounds inclusive; lo and hi are both
//	                numbers or both date-times, lo ≤ hi.
//	exists          v is present and not JSON null.
//	within_last D   v is a date-time t with now − D < t ≤ now: the start is
//	                exclusive, now is included, future instants are not.
//	near {"lat", "lon", "radius_km"}
//	                v is a location, either an object whose "lat" and "lon"
//	                are numbers (other keys ignored) or a string "lat, lon"
//	                (a comma, optional spaces around each number), with
//	                lat in [-90, 90] and lon in [-180, 180]; and its
//	                distance to the centre is ≤ radius_km. The distance is
//	                the haversine great-circle distance on a sphere of
//	                radius 6371.0088 km (see Distance for the exact formula).
//
// neq, not_in, not_contains, not_exists and not_within_last are the exact
// complements of eq, in, contains, exists and within_last: they match
// precisely when the positive form does not, so a missing value, a null, a
// value of another type and (for not_within_last) a future or non-date
// value all match them. There is no other negation.
//
// ignore_case (allowed only with eq, neq, in, not_in, contains,
// not_contains, starts_with, ends_with and matches) makes string
// comparisons case-insensitive by applying strings.ToLower (Unicode
// lower-case mapping, rune by rune) to both the operand and the value. For
// matches the expression is compiled with RE2's (?i) flag instead (Unicode
// simple case folding), because lower-casing a pattern would change
// escapes such as \D. Number, boolean and date-time operands are not
// affected by ignore_case.
//
// Durations (within_last, not_within_last, "last") are a positive decimal
// integer and one unit: s, m, h, d (24h) or w (7d); see ParseDuration.
//
// # Events
//
// An event condition considers the profile's events that
//
//   - have exactly the name NAME (case-sensitive);
//   - lie in the window: {"last": D} keeps timestamps t with
//     now − D < t ≤ now (events in the future are outside);
//     {"from": F, "to": T} keeps F ≤ t ≤ T, both inclusive, compared as
//     instants; no window keeps every retained event;
//   - satisfy every predicate of "where", each evaluated like a trait test
//     on the event's property (dotted paths through model.Lookup).
//
// These are the qualifying events; their number is the count. A profile
// with none has count 0.
//
//   - Without count and aggregate the condition is count ≥ 1.
//   - With count only, the count must satisfy it (eq, neq, gt, gte, lt,
//     lte, or between [lo, hi] inclusive); so {"op": "lt", "value": 3}
//     and {"op": "eq", "value": 0} hold for profiles without the event.
//   - With aggregate only, only the aggregate applies (a profile with no
//     qualifying event can match, e.g. sum eq 0).
//   - With both, both must hold.
//
// Count operands are JSON numbers with a non-negative integral value
// (3, 3.0 and 3e0 are the same) up to 2^53.
//
// # Aggregates
//
// {"fn": F, "property": NAME, "op": OP, "value": V} computes F over the
// property NAME of the qualifying events, then compares the result with a
// number operand using eq, neq, in, not_in, gt, gte, lt, lte or between.
//
//   - sum, avg, min, max use the numeric values only; events where the
//     property is missing, null or not a number are ignored. sum adds in
//     event order in float64; avg is that sum divided by the number of
//     numeric values.
//   - distinct is the number of distinct values present and not null, of
//     any type, compared by CanonicalJSON (numbers as float64, object keys
//     sorted): 1 and 1.0 are one value, "1" and 1 are two, strings are
//     compared exactly (no case folding, date-times as written).
//   - Over no values sum and distinct are 0. avg, min and max then have no
//     value, and the aggregate does not match whatever the operator —
//     not even neq.
//
// # Traits the server sets
//
// "$bot": true is set by ingestion on a profile that sent more than
// limits.bot_events_per_minute events in one minute, and removed after a
// day under the threshold. Its events are all kept; to leave such
// profiles out of a segment, add {"not": {"trait": "$bot", "op": "eq",
// "value": true}}.
//
// # Validation
//
// Parse refuses, with the JSON pointer of the offending part (see Error):
// invalid JSON, trailing data and duplicate object keys; anything but an
// object where a condition is expected; unknown keys (including a second
// form key such as "trait" beside "event"); an empty and/or; {"all"} other
// than true; empty names; unknown operators, and operators not allowed in
// a count or aggregate; a missing value, or a value given to exists or
// not_exists; operands of the wrong type; an empty in/not_in list; a
// between that is not [lo, hi] of two numbers or two date-times with
// lo ≤ hi; an invalid RE2 expression; an invalid duration; a near operand
// that is not {"lat", "lon", "radius_km"} with lat in [-90, 90], lon in
// [-180, 180] and radius_km ≥ 0; ignore_case that is not a boolean or is
// true with another operator; a count that is not a non-negative integer;
// an aggregate without fn, property, op or value, or with an unknown fn; a
// window with "last" and "from"/"to", with only one of "from" and "to",
// with a bound that is not an RFC 3339 date-time, or with from after to.
// A condition may nest MaxDepth (64) levels and hold MaxLeaves (10,000)
// leaves; beyond that the error points at the first node past the limit.
//
// A missing required key is reported at the pointer where it belongs
// (e.g. "/and/0/value"); problems spanning a whole array or object (lo >
// hi, from after to) at that array or object.
package condition
