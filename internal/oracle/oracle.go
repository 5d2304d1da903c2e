// Package oracle is the brute-force reference evaluator of the condition
// language. It evaluates a parsed condition for one profile from the
// profile's raw traits and events, in the most direct way the semantics in
// the condition package's documentation allow, so that differential tests
// can compare the real evaluators against it.
//
// It deliberately shares no matching code with package condition: it reads
// only the fields of condition.Node (and the raw operand Value, not the
// pre-parsed forms), and re-implements every operator here.
package oracle

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
)

// Input is everything known about one profile.
type Input struct {
	Traits map[string]any
	Events []model.Event
	// InSegment reports membership of a referenced segment; nil means the
	// profile is in no segment.
	InSegment func(id string) bool
}

// Match reports whether the profile satisfies the condition at now.
func Match(n *condition.Node, in Input, now time.Time) bool {
	switch n.Kind {
	case condition.And:
		for _, c := range n.Children {
			if !Match(c, in, now) {
				return false
			}
		}
		return true
	case condition.Or:
		for _, c := range n.Children {
			if Match(c, in, now) {
				return true
			}
		}
		return false
	case condition.Not:
		return !Match(n.Children[0], in, now)
	case condition.All:
		return true
	case condition.Segment:
		return in.InSegment != nil && in.InSegment(n.SegmentID)
	case condition.Trait:
		v, ok := model.Lookup(in.Traits, n.Name)
		return holds(string(n.Test.Op), n.Test.Value, n.Test.IgnoreCase, v, ok, now)
	case condition.Event:
		return event(n, in.Events, now)
	}
	return false
}

// Criteria reports, for each of n.Leaves() in order, whether that leaf
// alone matches the profile.
func Criteria(n *condition.Node, in Input, now time.Time) []bool {
	leaves := n.Leaves()
	out := make([]bool, len(leaves))
	for i, l := range leaves {
		out[i] = Match(l, in, now)
	}
	return out
}

func event(n *condition.Node, events []model.Event, now time.Time) bool {
	var count int64
	var values []any // the aggregate property of each qualifying event that has it
	for _, e := range events {
		if e.Name != n.Name || !inWindow(n.Window, e.Timestamp, now) {
			continue
		}
		ok := true
		for _, p := range n.Where {
			v, present := model.Lookup(e.Properties, p.Property)
			if !holds(string(p.Op), p.Value, p.IgnoreCase, v, present, now) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		count++
		if n.Aggregate != nil {
			if v, present := model.Lookup(e.Properties, n.Aggregate.Property); present {
				values = append(values, v)
			}
		}
	}
	if n.Count != nil && !countHolds(n.Count, count) {
		return false
	}
	if n.Count == nil && n.Aggregate == nil && count < 1 {
		return false
	}
	if n.Aggregate != nil {
		x, defined := aggregate(string(n.Aggregate.Fn), values)
		if !defined {
			return false
		}
		return holds(string(n.Aggregate.Op), n.Aggregate.Value, false, x, true, now)
	}
	return true
}

func inWindow(w condition.Window, ts, now time.Time) bool {
	switch w.Kind {
	case condition.WindowLast:
		age := now.Sub(ts)
		return age >= 0 && age < w.Last
	case condition.WindowRange:
		return !ts.Before(w.From) && !ts.After(w.To)
	}
	return true
}

func countHolds(c *condition.Cmp, n int64) bool {
	switch c.Op {
	case "eq":
		return n == c.Lo
	case "neq":
		return n != c.Lo
	case "gt":
		return n > c.Lo
	case "gte":
		return n >= c.Lo
	case "lt":
		return n < c.Lo
	case "lte":
		return n <= c.Lo
	case "between":
		return c.Lo <= n && n <= c.Hi
	}
	panic("oracle: unknown count operator " + string(c.Op))
}

func aggregate(fn string, values []any) (float64, bool) {
	if fn == "distinct" {
		seen := map[string]bool{}
		for _, v := range values {
			if v != nil {
				seen[jsonKey(v)] = true
			}
		}
		return float64(len(seen)), true
	}
	var nums []float64
	for _, v := range values {
		if f, ok := number(v); ok {
			nums = append(nums, f)
		}
	}
	sum := 0.0
	for _, f := range nums {
		sum += f
	}
	switch fn {
	case "sum":
		return sum, true
	case "avg":
		if len(nums) == 0 {
			return 0, false
		}
		return sum / float64(len(nums)), true
	case "min", "max":
		if len(nums) == 0 {
			return 0, false
		}
		best := nums[0]
		for _, f := range nums[1:] {
			if (fn == "min" && f < best) || (fn == "max" && f > best) {
				best = f
			}
		}
		return best, true
	}
	panic("oracle: unknown aggregate function " + fn)
}

// jsonKey encodes v as JSON with every number as a float64.
func jsonKey(v any) string {
	var norm func(any) any
	norm = func(v any) any {
		if f, ok := number(v); ok {
			return f
		}
		switch x := v.(type) {
		case map[string]any:
			m := map[string]any{}
			for k, e := range x {
				m[k] = norm(e)
			}
			return m
		case []any:
			var out []any
			for _, e := range x {
				out = append(out, norm(e))
			}
			return out
		}
		return v
	}
	b, err := json.Marshal(norm(v))
	if err != nil {
		panic("oracle: cannot encode a value for distinct: " + err.Error())
	}
	return string(b)
}

// holds evaluates one operator on one value: v is the value (present false
// when missing) and operand the operator's operand as JSON decodes it.
func holds(op string, operand any, ignoreCase bool, v any, present bool, now time.Time) bool {
	switch op {
	case "neq":
		return !holds("eq", operand, ignoreCase, v, present, now)
	case "not_in":
		return !holds("in", operand, ignoreCase, v, present, now)
	case "not_contains":
		return !holds("contains", operand, ignoreCase, v, present, now)
	case "not_exists":
		return !holds("exists", operand, ignoreCase, v, present, now)
	case "not_within_last":
		return !holds("within_last", operand, ignoreCase, v, present, now)
	}
	if !present {
		return false
	}
	lower := func(s string) string {
		if ignoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	switch op {
	case "exists":
		return v != nil
	case "eq":
		return equal(operand, v, ignoreCase)
	case "in":
		for _, e := range operand.([]any) {
			if equal(e, v, ignoreCase) {
				return true
			}
		}
		return false
	case "contains":
		if list, ok := v.([]any); ok {
			for _, e := range list {
				if equal(operand, e, ignoreCase) {
					return true
				}
			}
			return false
		}
		s, ok1 := v.(string)
		sub, ok2 := operand.(string)
		return ok1 && ok2 && strings.Contains(lower(s), lower(sub))
	case "starts_with":
		s, ok := v.(string)
		return ok && strings.HasPrefix(lower(s), lower(operand.(string)))
	case "ends_with":
		s, ok := v.(string)
		return ok && strings.HasSuffix(lower(s), lower(operand.(string)))
	case "matches":
		s, ok := v.(string)
		if !ok {
			return false
		}
		pattern := operand.(string)
		if ignoreCase {
			pattern = "(?i)" + pattern
		}
		return regexp.MustCompile(pattern).MatchString(s)
	case "gt":
		c, ok := order(v, operand)
		return ok && c > 0
	case "gte":
		c, ok := order(v, operand)
		return ok && c >= 0
	case "lt":
		c, ok := order(v, operand)
		return ok && c < 0
	case "lte":
		c, ok := order(v, operand)
		return ok && c <= 0
	case "between":
		bounds := operand.([]any)
		c1, ok1 := order(v, bounds[0])
		c2, ok2 := order(v, bounds[1])
		return ok1 && ok2 && c1 >= 0 && c2 <= 0
	case "within_last":
		s, ok := v.(string)
		if !ok {
			return false
		}
		t, ok := instant(s)
		if !ok {
			return false
		}
		age := now.Sub(t)
		return age >= 0 && age < duration(operand.(string))
	case "near":
		lat, lon, ok := location(v)
		if !ok {
			return false
		}
		c := operand.(map[string]any)
		return haversine(lat, lon, c["lat"].(float64), c["lon"].(float64)) <= c["radius_km"].(float64)
	}
	panic("oracle: unknown operator " + op)
}

// equal compares a value with an operand by the operand's type.
func equal(operand, v any, ignoreCase bool) bool {
	switch o := operand.(type) {
	case float64:
		f, ok := number(v)
		return ok && f == o
	case bool:
		b, ok := v.(bool)
		return ok && b == o
	case string:
		s, ok := v.(string)
		if !ok {
			return false
		}
		if ot, isTime := instant(o); isTime {
			st, ok := instant(s)
			return ok && st.Equal(ot)
		}
		if ignoreCase {
			return strings.ToLower(s) == strings.ToLower(o)
		}
		return s == o
	}
	return false
}

// order compares a value with an operand by the operand's type: -1, 0 or
// +1 as v is below, equal to or above it; false if v has another type.
func order(v, operand any) (int, bool) {
	switch o := operand.(type) {
	case float64:
		f, ok := number(v)
		if !ok || f != f {
			return 0, false
		}
		if f < o {
			return -1, true
		}
		if f > o {
			return 1, true
		}
		return 0, true
	case string:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		if ot, isTime := instant(o); isTime {
			st, ok := instant(s)
			if !ok {
				return 0, false
			}
			if st.Before(ot) {
				return -1, true
			}
			if st.After(ot) {
				return 1, true
			}
			return 0, true
		}
		if s < o {
			return -1, true
		}
		if s > o {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// instant parses a date-time: what model.ParseTime accepts, the data
// model's definition of the DateTime value type.
func instant(s string) (time.Time, bool) {
	return model.ParseTime(s)
}

func duration(s string) time.Duration {
	units := map[byte]time.Duration{
		's': time.Second, 'm': time.Minute, 'h': time.Hour,
		'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil {
		panic("oracle: bad duration " + s)
	}
	return time.Duration(n) * units[s[len(s)-1]]
}

func location(v any) (lat, lon float64, ok bool) {
	switch x := v.(type) {
	case map[string]any:
		var ok1, ok2 bool
		lat, ok1 = number(x["lat"])
		lon, ok2 = number(x["lon"])
		ok = ok1 && ok2
	case string:
		parts := strings.SplitN(x, ",", 2)
		if len(parts) != 2 {
			return 0, 0, false
		}
		var err1, err2 error
		lat, err1 = strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		lon, err2 = strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		ok = err1 == nil && err2 == nil
	}
	if !ok || lat < -90 || lat > 90 || lon < -180 || lon > 180 || lat != lat || lon != lon {
		return 0, 0, false
	}
	return lat, lon, true
}

// haversine is the great-circle distance in km (Earth radius 6371.0088),
// computed with the formula and the operation order the condition package
// documents, so that both agree exactly at the boundary.
func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088
	const degree = math.Pi / 180
	sinLat := math.Sin((lat2 - lat1) * degree / 2)
	sinLon := math.Sin((lon2 - lon1) * degree / 2)
	a := sinLat*sinLat + math.Cos(lat1*degree)*math.Cos(lat2*degree)*sinLon*sinLon
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}
