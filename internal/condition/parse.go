package condition

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// Parse parses one condition (a JSON document) and validates it
// completely: syntax, shape, keys, operators, operand types, regular
// expressions, durations, windows and the size limits. Every problem is
// reported as an *Error with the JSON pointer of the offending part. Parse
// does not check segment references; see CheckCycles.
func Parse(raw []byte) (*Node, error) {
	doc, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	var p parser
	n, err := p.cond(doc, "", 1)
	if err != nil {
		return nil, err
	}
	return n, nil
}

type parser struct {
	leaves int
}

const kindKeys = `"and", "or", "not", "all", "segment", "trait" or "event"`

func isKindKey(k string) bool {
	switch k {
	case "and", "or", "not", "all", "segment", "trait", "event":
		return true
	}
	return false
}

// allowedKey reports whether key may appear in a condition whose kind key
// is kind.
func allowedKey(kind, key string) bool {
	switch kind {
	case "trait":
		switch key {
		case "trait", "op", "value", "ignore_case":
			return true
		}
		return false
	case "event":
		switch key {
		case "event", "where", "count", "aggregate", "within":
			return true
		}
		return false
	}
	return key == kind
}

func (p *parser) cond(v any, path string, depth int) (*Node, error) {
	if depth > MaxDepth {
		return nil, errf(path, "conditions nested more than %d levels deep", MaxDepth)
	}
	obj, ok := v.(*object)
	if !ok {
		return nil, errf(path, "a condition must be a JSON object, not %s", describe(v))
	}
	kind := ""
	for _, k := range obj.keys {
		if isKindKey(k) {
			kind = k
			break
		}
	}
	if kind == "" {
		return nil, errf(path, "a condition needs one of the keys %s", kindKeys)
	}
	for _, k := range obj.keys {
		switch {
		case allowedKey(kind, k):
		case isKindKey(k):
			return nil, errf(pointer(path, k), "%q cannot be combined with %q", k, kind)
		default:
			return nil, errf(pointer(path, k), "unknown key %q", k)
		}
	}
	n := &Node{Path: path}
	switch kind {
	case "and", "or":
		n.Kind = And
		if kind == "or" {
			n.Kind = Or
		}
		lp := pointer(path, kind)
		arr, ok := obj.vals[kind].([]any)
		if !ok {
			return nil, errf(lp, "%q must be an array of conditions", kind)
		}
		if len(arr) == 0 {
			return nil, errf(lp, "%q must not be empty", kind)
		}
		n.Children = make([]*Node, 0, len(arr))
		for i, e := range arr {
			c, err := p.cond(e, index(lp, i), depth+1)
			if err != nil {
				return nil, err
			}
			n.Children = append(n.Children, c)
		}
	case "not":
		n.Kind = Not
		c, err := p.cond(obj.vals["not"], pointer(path, "not"), depth+1)
		if err != nil {
			return nil, err
		}
		n.Children = []*Node{c}
	case "all":
		n.Kind = All
		if err := p.leaf(path); err != nil {
			return nil, err
		}
		if b, ok := obj.vals["all"].(bool); !ok || !b {
			return nil, errf(pointer(path, "all"), `"all" must be true`)
		}
	case "segment":
		n.Kind = Segment
		if err := p.leaf(path); err != nil {
			return nil, err
		}
		id, err := requireString(obj, path, "segment")
		if err != nil {
			return nil, err
		}
		n.SegmentID = id
	case "trait":
		n.Kind = Trait
		if err := p.leaf(path); err != nil {
			return nil, err
		}
		name, err := requireString(obj, path, "trait")
		if err != nil {
			return nil, err
		}
		t, err := parseTest(obj, path, false)
		if err != nil {
			return nil, err
		}
		n.Name, n.Test = name, &t
	case "event":
		n.Kind = Event
		if err := p.leaf(path); err != nil {
			return nil, err
		}
		if err := parseEvent(n, obj, path); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (p *parser) leaf(path string) error {
	p.leaves++
	if p.leaves > MaxLeaves {
		return errf(path, "more than %d leaf conditions", MaxLeaves)
	}
	return nil
}

func parseEvent(n *Node, obj *object, path string) error {
	name, err := requireString(obj, path, "event")
	if err != nil {
		return err
	}
	n.Name = name
	if raw, ok := obj.get("where"); ok {
		wp := pointer(path, "where")
		arr, ok := raw.([]any)
		if !ok {
			return errf(wp, `"where" must be an array of property conditions`)
		}
		n.Where = make([]Pred, 0, len(arr))
		for i, e := range arr {
			pr, err := parsePred(e, index(wp, i))
			if err != nil {
				return err
			}
			n.Where = append(n.Where, pr)
		}
	}
	if raw, ok := obj.get("count"); ok {
		c, err := parseCount(raw, pointer(path, "count"))
		if err != nil {
			return err
		}
		n.Count = c
	}
	if raw, ok := obj.get("aggregate"); ok {
		a, err := parseAgg(raw, pointer(path, "aggregate"))
		if err != nil {
			return err
		}
		n.Aggregate = a
	}
	if raw, ok := obj.get("within"); ok {
		w, err := parseWindow(raw, pointer(path, "within"))
		if err != nil {
			return err
		}
		n.Window = w
	}
	return nil
}

func parsePred(v any, path string) (Pred, error) {
	obj, ok := v.(*object)
	if !ok {
		return Pred{}, errf(path, "a property condition must be a JSON object, not %s", describe(v))
	}
	if err := onlyKeys(obj, path, "property", "op", "value", "ignore_case"); err != nil {
		return Pred{}, err
	}
	prop, err := requireString(obj, path, "property")
	if err != nil {
		return Pred{}, err
	}
	t, err := parseTest(obj, path, false)
	if err != nil {
		return Pred{}, err
	}
	return Pred{Path: path, Property: prop, Test: t}, nil
}

func parseCount(v any, path string) (*Cmp, error) {
	obj, ok := v.(*object)
	if !ok {
		return nil, errf(path, `"count" must be an object such as {"op": "gte", "value": 3}`)
	}
	if err := onlyKeys(obj, path, "op", "value"); err != nil {
		return nil, err
	}
	op, err := parseOp(obj, path)
	if err != nil {
		return nil, err
	}
	if !op.inCount() {
		return nil, errf(pointer(path, "op"), "operator %q cannot be used in a count", op)
	}
	vp := pointer(path, "value")
	raw, ok := obj.get("value")
	if !ok {
		return nil, errf(vp, `missing "value"`)
	}
	c := &Cmp{Op: op}
	if op != OpBetween {
		n, ok := countInt(raw)
		if !ok {
			return nil, errf(vp, "count must be a non-negative integer")
		}
		c.Lo = n
		return c, nil
	}
	arr, ok := raw.([]any)
	if !ok {
		return nil, errf(vp, `value of "between" must be an array [lo, hi]`)
	}
	if len(arr) != 2 {
		return nil, errf(vp, `value of "between" must have exactly 2 elements, not %d`, len(arr))
	}
	var bounds [2]int64
	for i, e := range arr {
		n, ok := countInt(e)
		if !ok {
			return nil, errf(index(vp, i), "count must be a non-negative integer")
		}
		bounds[i] = n
	}
	if bounds[0] > bounds[1] {
		return nil, errf(vp, `lower bound of "between" is greater than the upper bound`)
	}
	c.Lo, c.Hi = bounds[0], bounds[1]
	return c, nil
}

// countInt accepts a JSON number with an integral value in [0, 2^53]
// (3, 3.0 and 3e0 alike).
func countInt(v any) (int64, bool) {
	x, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
		return n, n >= 0
	}
	f, err := strconv.ParseFloat(string(x), 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func parseAgg(v any, path string) (*Agg, error) {
	obj, ok := v.(*object)
	if !ok {
		return nil, errf(path, `"aggregate" must be an object such as {"fn": "sum", "property": "price", "op": "gt", "value": 100}`)
	}
	if err := onlyKeys(obj, path, "fn", "property", "op", "value"); err != nil {
		return nil, err
	}
	fn, err := requireString(obj, path, "fn")
	if err != nil {
		return nil, err
	}
	if !AggFn(fn).Valid() {
		return nil, errf(pointer(path, "fn"), `unknown aggregate function %q (want sum, avg, min, max or distinct)`, fn)
	}
	prop, err := requireString(obj, path, "property")
	if err != nil {
		return nil, err
	}
	t, err := parseTest(obj, path, true)
	if err != nil {
		return nil, err
	}
	return &Agg{Fn: AggFn(fn), Property: prop, Test: t}, nil
}

func parseWindow(v any, path string) (Window, error) {
	obj, ok := v.(*object)
	if !ok {
		return Window{}, errf(path, `"within" must be an object such as {"last": "7d"}`)
	}
	if err := onlyKeys(obj, path, "last", "from", "to"); err != nil {
		return Window{}, err
	}
	_, hasFrom := obj.get("from")
	_, hasTo := obj.get("to")
	if raw, ok := obj.get("last"); ok {
		lp := pointer(path, "last")
		if hasFrom || hasTo {
			return Window{}, errf(lp, `"last" cannot be combined with "from" and "to"`)
		}
		s, ok := raw.(string)
		if !ok {
			return Window{}, errf(lp, `"last" must be a duration such as "7d"`)
		}
		d, err := ParseDuration(s)
		if err != nil {
			return Window{}, errf(lp, "%v", err)
		}
		return Window{Kind: WindowLast, Last: d}, nil
	}
	if !hasFrom && !hasTo {
		return Window{}, errf(path, `"within" needs "last", or "from" and "to"`)
	}
	from, err := instant(obj, path, "from")
	if err != nil {
		return Window{}, err
	}
	to, err := instant(obj, path, "to")
	if err != nil {
		return Window{}, err
	}
	if from.After(to) {
		return Window{}, errf(path, `"from" is after "to"`)
	}
	return Window{Kind: WindowRange, From: from, To: to}, nil
}

func instant(obj *object, path, key string) (time.Time, error) {
	kp := pointer(path, key)
	raw, ok := obj.get(key)
	if !ok {
		return time.Time{}, errf(kp, "missing %q", key)
	}
	s, _ := raw.(string)
	t, ok := model.ParseTime(s)
	if !ok {
		return time.Time{}, errf(kp, "%q must be an RFC 3339 date-time", key)
	}
	return t, nil
}

// parseTest reads "op", "ignore_case" (unless numeric) and "value" of obj.
// numeric restricts operators and operands to those of an aggregate.
func parseTest(obj *object, path string, numeric bool) (Test, error) {
	op, err := parseOp(obj, path)
	if err != nil {
		return Test{}, err
	}
	if numeric && !op.inAggregate() {
		return Test{}, errf(pointer(path, "op"), "operator %q cannot be used in an aggregate", op)
	}
	t := Test{Op: op}
	if raw, ok := obj.get("ignore_case"); ok && !numeric {
		ip := pointer(path, "ignore_case")
		b, ok := raw.(bool)
		if !ok {
			return Test{}, errf(ip, `"ignore_case" must be a boolean`)
		}
		if b && !op.IsString() {
			return Test{}, errf(ip, `"ignore_case" cannot be used with operator %q`, op)
		}
		t.IgnoreCase = b
	}
	vp := pointer(path, "value")
	raw, has := obj.get("value")
	if op == OpExists || op == OpNotExists {
		if has {
			return Test{}, errf(vp, "operator %q takes no value", op)
		}
		return t, nil
	}
	if !has {
		return Test{}, errf(vp, `missing "value"`)
	}
	if err := t.operand(raw, vp, numeric); err != nil {
		return Test{}, err
	}
	t.Value = plain(raw)
	return t, nil
}

func parseOp(obj *object, path string) (Op, error) {
	op := pointer(path, "op")
	raw, ok := obj.get("op")
	if !ok {
		return "", errf(op, `missing "op"`)
	}
	s, ok := raw.(string)
	if !ok {
		return "", errf(op, `"op" must be a string`)
	}
	if !Op(s).Valid() {
		return "", errf(op, "unknown operator %q", s)
	}
	return Op(s), nil
}

// operand parses the operand v of t.Op into t's pre-parsed fields.
func (t *Test) operand(v any, path string, numeric bool) error {
	subject := "value of " + strconv.Quote(string(t.Op))
	element := "element of " + strconv.Quote(string(t.Op))
	switch t.Op {
	case OpEq, OpNeq, OpContains, OpNotContains:
		s, err := t.scalar(v, path, subject, numeric, true)
		t.Scalar = s
		return err
	case OpGt, OpGte, OpLt, OpLte:
		s, err := t.scalar(v, path, subject, numeric, false)
		t.Scalar = s
		return err
	case OpIn, OpNotIn:
		arr, ok := v.([]any)
		if !ok {
			return errf(path, "%s must be an array", subject)
		}
		if len(arr) == 0 {
			return errf(path, "%s must not be empty", subject)
		}
		t.List = make([]Scalar, 0, len(arr))
		for i, e := range arr {
			s, err := t.scalar(e, index(path, i), element, numeric, true)
			if err != nil {
				return err
			}
			t.List = append(t.List, s)
		}
		return nil
	case OpStartsWith, OpEndsWith, OpMatches:
		s, ok := v.(string)
		if !ok {
			return errf(path, "%s must be a string", subject)
		}
		t.Scalar = Scalar{Type: model.String, Str: s, Fold: t.fold(s)}
		if t.Op == OpMatches {
			pattern := s
			if t.IgnoreCase {
				pattern = "(?i)" + s
			}
			re, err := regexp.Compile(pattern)
			if err != nil {
				return errf(path, "invalid regular expression: %v", err)
			}
			t.Regexp = re
		}
		return nil
	case OpBetween:
		return t.between(v, path, numeric)
	case OpWithinLast, OpNotWithinLast:
		s, ok := v.(string)
		if !ok {
			return errf(path, `%s must be a duration such as "7d"`, subject)
		}
		d, err := ParseDuration(s)
		if err != nil {
			return errf(path, "%v", err)
		}
		t.Duration = d
		return nil
	case OpNear:
		return t.near(v, path)
	}
	return errf(path, "operator %q takes no value", t.Op)
}

// scalar parses one operand: a number; or, unless numeric, a string (an
// RFC 3339 string is a date-time) or, when bools, a boolean.
func (t *Test) scalar(v any, path, subject string, numeric, bools bool) (Scalar, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return Scalar{}, errf(path, "number %s is out of range", x)
		}
		return Scalar{Type: model.Number, Num: f}, nil
	case string:
		if numeric {
			break
		}
		if ts, ok := model.ParseTime(x); ok {
			return Scalar{Type: model.DateTime, Str: x, Fold: t.fold(x), Time: ts}, nil
		}
		return Scalar{Type: model.String, Str: x, Fold: t.fold(x)}, nil
	case bool:
		if numeric || !bools {
			break
		}
		return Scalar{Type: model.Boolean, Bool: x}, nil
	}
	switch {
	case numeric:
		return Scalar{}, errf(path, "%s must be a number", subject)
	case bools:
		return Scalar{}, errf(path, "%s must be a string, number or boolean", subject)
	}
	return Scalar{}, errf(path, "%s must be a number or a string", subject)
}

func (t *Test) between(v any, path string, numeric bool) error {
	arr, ok := v.([]any)
	if !ok {
		return errf(path, `value of "between" must be an array [lo, hi]`)
	}
	if len(arr) != 2 {
		return errf(path, `value of "between" must have exactly 2 elements, not %d`, len(arr))
	}
	t.List = make([]Scalar, 2)
	for i, e := range arr {
		s, err := t.scalar(e, index(path, i), `element of "between"`, numeric, false)
		if err == nil && s.Type != model.Number && s.Type != model.DateTime {
			err = errf(index(path, i), `element of "between" must be a number or an RFC 3339 date-time`)
		}
		if err != nil {
			return err
		}
		t.List[i] = s
	}
	lo, hi := t.List[0], t.List[1]
	if lo.Type != hi.Type {
		return errf(index(path, 1), `elements of "between" must be of one type`)
	}
	if (lo.Type == model.Number && lo.Num > hi.Num) || (lo.Type == model.DateTime && lo.Time.After(hi.Time)) {
		return errf(path, `lower bound of "between" is greater than the upper bound`)
	}
	return nil
}

func (t *Test) near(v any, path string) error {
	obj, ok := v.(*object)
	if !ok {
		return errf(path, `value of "near" must be an object {"lat": ..., "lon": ..., "radius_km": ...}`)
	}
	if err := onlyKeys(obj, path, "lat", "lon", "radius_km"); err != nil {
		return err
	}
	var out [3]float64
	for i, k := range [3]string{"lat", "lon", "radius_km"} {
		kp := pointer(path, k)
		raw, ok := obj.get(k)
		if !ok {
			return errf(kp, "missing %q", k)
		}
		x, ok := raw.(json.Number)
		if !ok {
			return errf(kp, "%q must be a number", k)
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return errf(kp, "number %s is out of range", x)
		}
		out[i] = f
	}
	switch {
	case out[0] < -90 || out[0] > 90:
		return errf(pointer(path, "lat"), `"lat" must be between -90 and 90`)
	case out[1] < -180 || out[1] > 180:
		return errf(pointer(path, "lon"), `"lon" must be between -180 and 180`)
	case out[2] < 0:
		return errf(pointer(path, "radius_km"), `"radius_km" must not be negative`)
	}
	t.Near = Geo{Lat: out[0], Lon: out[1], RadiusKm: out[2]}
	return nil
}

func requireString(obj *object, path, key string) (string, error) {
	kp := pointer(path, key)
	raw, ok := obj.get(key)
	if !ok {
		return "", errf(kp, "missing %q", key)
	}
	s, ok := raw.(string)
	if !ok {
		return "", errf(kp, "%q must be a string", key)
	}
	if s == "" {
		return "", errf(kp, "%q must not be empty", key)
	}
	return s, nil
}

func onlyKeys(obj *object, path string, keys ...string) error {
next:
	for _, k := range obj.keys {
		for _, a := range keys {
			if k == a {
				continue next
			}
		}
		return errf(pointer(path, k), "unknown key %q", k)
	}
	return nil
}

func describe(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "an object"
}
