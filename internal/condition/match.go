package condition

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// EarthRadiusKm is the mean Earth radius used by near.
const EarthRadiusKm = 6371.0088

// Match reports whether a value satisfies the test. present is false when
// the trait or property does not exist (v is then ignored); now is the
// evaluation instant for within_last and not_within_last. The semantics
// are those of the package documentation.
func (t *Test) Match(v any, present bool, now time.Time) bool {
	op, negated := t.Op.Positive()
	m := present && t.positive(op, v, now)
	return m != negated
}

func (t *Test) positive(op Op, v any, now time.Time) bool {
	switch op {
	case OpExists:
		return v != nil
	case OpEq:
		return t.equal(&t.Scalar, v)
	case OpIn:
		for i := range t.List {
			if t.equal(&t.List[i], v) {
				return true
			}
		}
		return false
	case OpContains:
		switch x := v.(type) {
		case string:
			if t.Scalar.Type == model.String || t.Scalar.Type == model.DateTime {
				return strings.Contains(t.fold(x), t.Scalar.Fold)
			}
		case []any:
			for _, e := range x {
				if t.equal(&t.Scalar, e) {
					return true
				}
			}
		}
		return false
	case OpStartsWith:
		x, ok := v.(string)
		return ok && strings.HasPrefix(t.fold(x), t.Scalar.Fold)
	case OpEndsWith:
		x, ok := v.(string)
		return ok && strings.HasSuffix(t.fold(x), t.Scalar.Fold)
	case OpMatches:
		x, ok := v.(string)
		return ok && t.Regexp != nil && t.Regexp.MatchString(x)
	case OpGt:
		c, ok := compare(v, &t.Scalar)
		return ok && c > 0
	case OpGte:
		c, ok := compare(v, &t.Scalar)
		return ok && c >= 0
	case OpLt:
		c, ok := compare(v, &t.Scalar)
		return ok && c < 0
	case OpLte:
		c, ok := compare(v, &t.Scalar)
		return ok && c <= 0
	case OpBetween:
		if len(t.List) != 2 {
			return false
		}
		lo, ok1 := compare(v, &t.List[0])
		hi, ok2 := compare(v, &t.List[1])
		return ok1 && ok2 && lo >= 0 && hi <= 0
	case OpWithinLast:
		s, ok := v.(string)
		if !ok {
			return false
		}
		ts, ok := model.ParseTime(s)
		return ok && ts.After(now.Add(-t.Duration)) && !ts.After(now)
	case OpNear:
		lat, lon, ok := Point(v)
		return ok && Distance(lat, lon, t.Near.Lat, t.Near.Lon) <= t.Near.RadiusKm
	}
	return false
}

// fold lower-cases s when the test ignores case.
func (t *Test) fold(s string) string {
	if t.IgnoreCase {
		return strings.ToLower(s)
	}
	return s
}

// equal reports whether v equals the operand s, by s's type.
func (t *Test) equal(s *Scalar, v any) bool {
	switch s.Type {
	case model.Number:
		f, ok := Number(v)
		return ok && f == s.Num
	case model.Boolean:
		b, ok := v.(bool)
		return ok && b == s.Bool
	case model.DateTime:
		x, ok := v.(string)
		if !ok {
			return false
		}
		ts, ok := model.ParseTime(x)
		return ok && ts.Equal(s.Time)
	case model.String:
		x, ok := v.(string)
		return ok && t.fold(x) == s.Fold
	}
	return false
}

// compare orders v against the operand s: numbers numerically, date-times
// as instants, other strings byte-wise. ok is false when v is not of s's
// type.
func compare(v any, s *Scalar) (c int, ok bool) {
	switch s.Type {
	case model.Number:
		f, ok := Number(v)
		if !ok || math.IsNaN(f) {
			return 0, false
		}
		switch {
		case f < s.Num:
			return -1, true
		case f > s.Num:
			return 1, true
		}
		return 0, true
	case model.DateTime:
		x, ok := v.(string)
		if !ok {
			return 0, false
		}
		ts, ok := model.ParseTime(x)
		if !ok {
			return 0, false
		}
		return ts.Compare(s.Time), true
	case model.String:
		x, ok := v.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, s.Str), true
	}
	return 0, false
}

// Number returns the value of a JSON number in any of the forms decoders
// produce (float64, json.Number, Go integer types). ok is false for
// anything else.
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !isRangeErr(err) {
			return 0, false
		}
		return f, true
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
	}
	return 0, false
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// Point reads a location value: an object with numeric "lat" and "lon"
// (other keys ignored) or a string "lat, lon" (spaces around either number
// optional). Latitude must lie in [-90, 90], longitude in [-180, 180].
func Point(v any) (lat, lon float64, ok bool) {
	switch x := v.(type) {
	case map[string]any:
		la, ok1 := Number(x["lat"])
		lo, ok2 := Number(x["lon"])
		lat, lon, ok = la, lo, ok1 && ok2
	case string:
		a, b, found := strings.Cut(x, ",")
		if !found {
			return 0, 0, false
		}
		la, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		lat, lon, ok = la, lo, err1 == nil && err2 == nil
	}
	if !ok || !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180) {
		return 0, 0, false
	}
	return lat, lon, true
}

// Distance is the haversine great-circle distance in kilometres between
// two points given in degrees, on a sphere of radius EarthRadiusKm:
//
//	a = sin²(Δφ/2) + cos φ1 · cos φ2 · sin²(Δλ/2)
//	d = 2 · R · asin(min(1, √a))
func Distance(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	p1, p2 := lat1*rad, lat2*rad
	dp, dl := (lat2-lat1)*rad, (lon2-lon1)*rad
	sp, sl := math.Sin(dp/2), math.Sin(dl/2)
	a := sp*sp + math.Cos(p1)*math.Cos(p2)*sl*sl
	return 2 * EarthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Match reports whether an event count satisfies the comparison.
func (c *Cmp) Match(n int64) bool {
	switch c.Op {
	case OpEq:
		return n == c.Lo
	case OpNeq:
		return n != c.Lo
	case OpGt:
		return n > c.Lo
	case OpGte:
		return n >= c.Lo
	case OpLt:
		return n < c.Lo
	case OpLte:
		return n <= c.Lo
	case OpBetween:
		return n >= c.Lo && n <= c.Hi
	}
	return false
}

// Contains reports whether an event timestamp lies in the window at now.
func (w *Window) Contains(ts, now time.Time) bool {
	switch w.Kind {
	case WindowLast:
		return ts.After(now.Add(-w.Last)) && !ts.After(now)
	case WindowRange:
		return !ts.Before(w.From) && !ts.After(w.To)
	}
	return true
}

// Match reports whether an aggregate result satisfies the comparison.
// defined is false when the aggregate has no value (avg, min and max over
// no numeric values); it then never matches, whatever the operator.
func (a *Agg) Match(x float64, defined bool) bool {
	return defined && a.Test.Match(x, true, time.Time{})
}

// NumberMatch returns Match for a defined numeric result as a function of
// the number alone: the same answers, without making an interface value
// of each number (an allocation each, millions per scan at scale). NaN
// never matches a numeric comparison, as in compare.
func (a *Agg) NumberMatch() func(float64) bool {
	t := &a.Test
	num := func(s *Scalar) bool { return s.Type == model.Number }
	switch {
	case t.Op == OpGt && num(&t.Scalar):
		return func(f float64) bool { return f > t.Scalar.Num }
	case t.Op == OpGte && num(&t.Scalar):
		return func(f float64) bool { return f >= t.Scalar.Num }
	case t.Op == OpLt && num(&t.Scalar):
		return func(f float64) bool { return f < t.Scalar.Num }
	case t.Op == OpLte && num(&t.Scalar):
		return func(f float64) bool { return f <= t.Scalar.Num }
	case t.Op == OpBetween && len(t.List) == 2 && num(&t.List[0]) && num(&t.List[1]):
		return func(f float64) bool { return f >= t.List[0].Num && f <= t.List[1].Num }
	}
	return func(f float64) bool { return t.Match(f, true, time.Time{}) }
}

// AggState accumulates an aggregate over the qualifying events' values.
type AggState struct {
	fn       AggFn
	n        int
	sum      float64
	min, max float64
	seen     map[string]struct{}
}

// NewState returns an empty accumulator for a.
func (a *Agg) NewState() *AggState {
	return &AggState{fn: a.Fn}
}

// Add adds one qualifying event's property value (present false when the
// event lacks the property). sum, avg, min and max take numeric values
// only; distinct takes every present non-null value.
func (s *AggState) Add(v any, present bool) {
	if !present {
		return
	}
	if s.fn == FnDistinct {
		if v == nil {
			return
		}
		if s.seen == nil {
			s.seen = map[string]struct{}{}
		}
		s.seen[CanonicalJSON(v)] = struct{}{}
		return
	}
	f, ok := Number(v)
	if !ok {
		return
	}
	if s.n == 0 || f < s.min {
		s.min = f
	}
	if s.n == 0 || f > s.max {
		s.max = f
	}
	s.n++
	s.sum += f
}

// Values is how many distinct values s holds (0 but for distinct).
func (s *AggState) Values() int { return len(s.seen) }

// Result returns the aggregate, and false when it has no value.
func (s *AggState) Result() (float64, bool) {
	switch s.fn {
	case FnSum:
		return s.sum, true
	case FnDistinct:
		return float64(len(s.seen)), true
	case FnAvg:
		return s.sum / float64(s.n), s.n > 0
	case FnMin:
		return s.min, s.n > 0
	case FnMax:
		return s.max, s.n > 0
	}
	return 0, false
}

// CanonicalJSON is the key by which distinct compares values: the
// encoding/json encoding of v after every number (at any depth) is
// converted to float64, so 1, 1.0 and json.Number("1e0") are one value and
// object keys are sorted.
func CanonicalJSON(v any) string {
	b, err := json.Marshal(canonical(v))
	if err != nil {
		return fmt.Sprintf("%T:%v", v, v)
	}
	return string(b)
}

func canonical(v any) any {
	if f, ok := Number(v); ok {
		return f
	}
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = canonical(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canonical(e)
		}
		return out
	}
	return v
}
