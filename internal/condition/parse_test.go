package condition_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
)

func TestParseErrors(t *testing.T) {
	const e3 = `{"trait": "a", "op": "eq", "value": 1}, {"trait": "b", "op": "eq", "value": 1}, {"trait": "c", "op": "eq", "value": 1}`
	for _, tc := range []struct {
		in, path, msg string
	}{
		// JSON
		{``, "", "empty condition: expected a JSON object"},
		{`   `, "", "empty condition: expected a JSON object"},
		{`{`, "", "invalid JSON: unexpected end of input"},
		{`{"and": [{"trait": x}]}`, "/and/0/trait", "invalid JSON: invalid character 'x' looking for beginning of value"},
		{`{"all": true} {}`, "", "unexpected data after the condition"},
		{`{"all": true, "all": true}`, "/all", `duplicate key "all"`},
		{`{"trait": "a", "op": "eq", "value": 1e400}`, "/value", "number 1e400 is out of range"},
		{`{"and": [` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `]}`, "/and/0" + strings.Repeat("/0", 998), "JSON nested more than 1000 levels deep"},

		// shapes
		{`[]`, "", "a condition must be a JSON object, not an array"},
		{`"x"`, "", "a condition must be a JSON object, not a string"},
		{`{}`, "", `a condition needs one of the keys "and", "or", "not", "all", "segment", "trait" or "event"`},
		{`{"property": "p", "op": "eq", "value": 1}`, "", `a condition needs one of the keys "and", "or", "not", "all", "segment", "trait" or "event"`},
		{`{"and": []}`, "/and", `"and" must not be empty`},
		{`{"or": {}}`, "/or", `"or" must be an array of conditions`},
		{`{"or": [{"all": true}, 5]}`, "/or/1", "a condition must be a JSON object, not a number"},
		{`{"not": [{"all": true}]}`, "/not", "a condition must be a JSON object, not an array"},
		{`{"not": null}`, "/not", "a condition must be a JSON object, not null"},
		{`{"all": false}`, "/all", `"all" must be true`},
		{`{"all": "yes"}`, "/all", `"all" must be true`},
		{`{"all": true, "not": {"all": true}}`, "/not", `"not" cannot be combined with "all"`},
		{`{"trait": "a", "event": "b"}`, "/event", `"event" cannot be combined with "trait"`},
		{`{"trait": "a", "op": "eq", "value": 1, "extra": 1}`, "/extra", `unknown key "extra"`},
		{`{"trait": "a", "op": "eq", "value": 1, "a/b~c": 1}`, "/a~1b~0c", `unknown key "a/b~c"`},
		{`{"segment": ""}`, "/segment", `"segment" must not be empty`},
		{`{"segment": 5}`, "/segment", `"segment" must be a string`},
		{`{"segment": "s", "name": "x"}`, "/name", `unknown key "name"`},

		// trait tests
		{`{"trait": 5, "op": "exists"}`, "/trait", `"trait" must be a string`},
		{`{"trait": "", "op": "exists"}`, "/trait", `"trait" must not be empty`},
		{`{"trait": "a", "value": 1}`, "/op", `missing "op"`},
		{`{"trait": "a", "op": 5, "value": 1}`, "/op", `"op" must be a string`},
		{`{"and": [` + e3 + `, {"trait": "d", "op": "equals", "value": 1}]}`, "/and/3/op", `unknown operator "equals"`},
		{`{"and": [{"all": true}, {"all": true}, {"trait": "c", "op": "EQ", "value": 1}]}`, "/and/2/op", `unknown operator "EQ"`},
		{`{"trait": "a", "op": "eq"}`, "/value", `missing "value"`},
		{`{"trait": "a", "op": "exists", "value": 1}`, "/value", `operator "exists" takes no value`},
		{`{"trait": "a", "op": "not_exists", "value": null}`, "/value", `operator "not_exists" takes no value`},
		{`{"trait": "a", "op": "eq", "value": null}`, "/value", `value of "eq" must be a string, number or boolean`},
		{`{"trait": "a", "op": "eq", "value": [1]}`, "/value", `value of "eq" must be a string, number or boolean`},
		{`{"trait": "a", "op": "neq", "value": {}}`, "/value", `value of "neq" must be a string, number or boolean`},
		{`{"trait": "a", "op": "contains", "value": null}`, "/value", `value of "contains" must be a string, number or boolean`},
		{`{"trait": "a", "op": "in", "value": 1}`, "/value", `value of "in" must be an array`},
		{`{"trait": "a", "op": "not_in", "value": []}`, "/value", `value of "not_in" must not be empty`},
		{`{"trait": "a", "op": "in", "value": [1, [2]]}`, "/value/1", `element of "in" must be a string, number or boolean`},
		{`{"trait": "a", "op": "in", "value": [null]}`, "/value/0", `element of "in" must be a string, number or boolean`},
		{`{"trait": "a", "op": "starts_with", "value": 1}`, "/value", `value of "starts_with" must be a string`},
		{`{"trait": "a", "op": "ends_with", "value": ["x"]}`, "/value", `value of "ends_with" must be a string`},
		{`{"trait": "a", "op": "matches", "value": 1}`, "/value", `value of "matches" must be a string`},
		{`{"trait": "a", "op": "matches", "value": "("}`, "/value", "invalid regular expression: error parsing regexp: missing closing ): `(`"},
		{`{"trait": "a", "op": "matches", "value": "a(?=b)"}`, "/value", "invalid regular expression: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
		{`{"trait": "a", "op": "gt", "value": true}`, "/value", `value of "gt" must be a number or a string`},
		{`{"trait": "a", "op": "lte", "value": null}`, "/value", `value of "lte" must be a number or a string`},
		{`{"trait": "a", "op": "between", "value": 1}`, "/value", `value of "between" must be an array [lo, hi]`},
		{`{"trait": "a", "op": "between", "value": [1]}`, "/value", `value of "between" must have exactly 2 elements, not 1`},
		{`{"trait": "a", "op": "between", "value": [1, 2, 3]}`, "/value", `value of "between" must have exactly 2 elements, not 3`},
		{`{"trait": "a", "op": "between", "value": ["a", "b"]}`, "/value/0", `element of "between" must be a number or an RFC 3339 date-time`},
		{`{"trait": "a", "op": "between", "value": [1, true]}`, "/value/1", `element of "between" must be a number or a string`},
		{`{"trait": "a", "op": "between", "value": [1, "2024-01-01T00:00:00Z"]}`, "/value/1", `elements of "between" must be of one type`},
		{`{"trait": "a", "op": "between", "value": [5, 1]}`, "/value", `lower bound of "between" is greater than the upper bound`},
		{`{"trait": "a", "op": "between", "value": ["2024-01-01T00:00:00Z", "2024-01-01T00:30:00+01:00"]}`, "/value", `lower bound of "between" is greater than the upper bound`},
		{`{"trait": "a", "op": "within_last", "value": 7}`, "/value", `value of "within_last" must be a duration such as "7d"`},
		{`{"trait": "a", "op": "within_last", "value": "7days"}`, "/value", `invalid duration "7days": want a positive integer and a unit s, m, h, d or w`},
		{`{"trait": "a", "op": "within_last", "value": "7y"}`, "/value", `invalid duration "7y": unit must be s, m, h, d or w`},
		{`{"trait": "a", "op": "not_within_last", "value": "0d"}`, "/value", `invalid duration "0d": must be positive`},
		{`{"trait": "a", "op": "within_last", "value": "-1d"}`, "/value", `invalid duration "-1d": want a positive integer and a unit s, m, h, d or w`},
		{`{"trait": "a", "op": "near", "value": "52.5, 13.4"}`, "/value", `value of "near" must be an object {"lat": ..., "lon": ..., "radius_km": ...}`},
		{`{"trait": "a", "op": "near", "value": {"lat": 1, "lon": 2}}`, "/value/radius_km", `missing "radius_km"`},
		{`{"trait": "a", "op": "near", "value": {"lat": "1", "lon": 2, "radius_km": 3}}`, "/value/lat", `"lat" must be a number`},
		{`{"trait": "a", "op": "near", "value": {"lat": 90.5, "lon": 2, "radius_km": 3}}`, "/value/lat", `"lat" must be between -90 and 90`},
		{`{"trait": "a", "op": "near", "value": {"lat": 1, "lon": -181, "radius_km": 3}}`, "/value/lon", `"lon" must be between -180 and 180`},
		{`{"trait": "a", "op": "near", "value": {"lat": 1, "lon": 2, "radius_km": -1}}`, "/value/radius_km", `"radius_km" must not be negative`},
		{`{"trait": "a", "op": "near", "value": {"lat": 1, "lon": 2, "radius_km": 1, "alt": 0}}`, "/value/alt", `unknown key "alt"`},
		{`{"trait": "a", "op": "gt", "value": 1, "ignore_case": true}`, "/ignore_case", `"ignore_case" cannot be used with operator "gt"`},
		{`{"trait": "a", "op": "exists", "ignore_case": true}`, "/ignore_case", `"ignore_case" cannot be used with operator "exists"`},
		{`{"trait": "a", "op": "eq", "value": "x", "ignore_case": "yes"}`, "/ignore_case", `"ignore_case" must be a boolean`},

		// events
		{`{"event": ""}`, "/event", `"event" must not be empty`},
		{`{"event": "E", "when": 1}`, "/when", `unknown key "when"`},
		{`{"event": "E", "where": {}}`, "/where", `"where" must be an array of property conditions`},
		{`{"event": "E", "where": [1]}`, "/where/0", "a property condition must be a JSON object, not a number"},
		{`{"event": "E", "where": [{"op": "exists"}]}`, "/where/0/property", `missing "property"`},
		{`{"event": "E", "where": [{"property": "p", "op": "exists", "trait": "x"}]}`, "/where/0/trait", `unknown key "trait"`},
		{`{"and": [{"event": "E", "where": [{"property": "p", "op": "eq", "value": 1}, {"property": "q", "op": "gt", "value": false}]}]}`, "/and/0/where/1/value", `value of "gt" must be a number or a string`},
		{`{"event": "E", "where": [{"property": "p", "op": "matches", "value": "[", "ignore_case": true}]}`, "/where/0/value", "invalid regular expression: error parsing regexp: missing closing ]: `[`"},
		{`{"event": "E", "count": 3}`, "/count", `"count" must be an object such as {"op": "gte", "value": 3}`},
		{`{"or": [` + e3 + `, {"event": "E", "count": {"op": "gte", "value": -1}}]}`, "/or/3/count/value", "count must be a non-negative integer"},
		{`{"event": "E", "count": {"op": "gte", "value": 2.5}}`, "/count/value", "count must be a non-negative integer"},
		{`{"event": "E", "count": {"op": "gte", "value": "3"}}`, "/count/value", "count must be a non-negative integer"},
		{`{"event": "E", "count": {"op": "gte", "value": 1e300}}`, "/count/value", "count must be a non-negative integer"},
		{`{"event": "E", "count": {"op": "gte"}}`, "/count/value", `missing "value"`},
		{`{"event": "E", "count": {"value": 1}}`, "/count/op", `missing "op"`},
		{`{"event": "E", "count": {"op": "contains", "value": 1}}`, "/count/op", `operator "contains" cannot be used in a count`},
		{`{"event": "E", "count": {"op": "gte", "value": 1, "ignore_case": true}}`, "/count/ignore_case", `unknown key "ignore_case"`},
		{`{"event": "E", "count": {"op": "between", "value": 1}}`, "/count/value", `value of "between" must be an array [lo, hi]`},
		{`{"event": "E", "count": {"op": "between", "value": [1]}}`, "/count/value", `value of "between" must have exactly 2 elements, not 1`},
		{`{"event": "E", "count": {"op": "between", "value": [1, -2]}}`, "/count/value/1", "count must be a non-negative integer"},
		{`{"event": "E", "count": {"op": "between", "value": [3, 1]}}`, "/count/value", `lower bound of "between" is greater than the upper bound`},
		{`{"event": "E", "aggregate": []}`, "/aggregate", `"aggregate" must be an object such as {"fn": "sum", "property": "price", "op": "gt", "value": 100}`},
		{`{"event": "E", "aggregate": {"property": "p", "op": "gt", "value": 1}}`, "/aggregate/fn", `missing "fn"`},
		{`{"event": "E", "aggregate": {"fn": 1, "property": "p", "op": "gt", "value": 1}}`, "/aggregate/fn", `"fn" must be a string`},
		{`{"event": "E", "aggregate": {"fn": "median", "property": "p", "op": "gt", "value": 1}}`, "/aggregate/fn", `unknown aggregate function "median" (want sum, avg, min, max or distinct)`},
		{`{"event": "E", "aggregate": {"fn": "distinct", "op": "gt", "value": 1}}`, "/aggregate/property", `missing "property"`},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "value": 1}}`, "/aggregate/op", `missing "op"`},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "op": "gt"}}`, "/aggregate/value", `missing "value"`},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "op": "contains", "value": 1}}`, "/aggregate/op", `operator "contains" cannot be used in an aggregate`},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "op": "exists"}}`, "/aggregate/op", `operator "exists" cannot be used in an aggregate`},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "op": "gt", "value": "10"}}`, "/aggregate/value", `value of "gt" must be a number`},
		{`{"event": "E", "aggregate": {"fn": "max", "property": "p", "op": "in", "value": [1, "2"]}}`, "/aggregate/value/1", `element of "in" must be a number`},
		{`{"event": "E", "aggregate": {"fn": "max", "property": "p", "op": "between", "value": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"]}}`, "/aggregate/value/0", `element of "between" must be a number`},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "op": "eq", "value": 1, "ignore_case": false}}`, "/aggregate/ignore_case", `unknown key "ignore_case"`},
		{`{"event": "E", "within": "7d"}`, "/within", `"within" must be an object such as {"last": "7d"}`},
		{`{"event": "E", "within": {}}`, "/within", `"within" needs "last", or "from" and "to"`},
		{`{"event": "E", "within": {"lst": "7d"}}`, "/within/lst", `unknown key "lst"`},
		{`{"event": "E", "within": {"last": "7d", "from": "2024-01-01T00:00:00Z"}}`, "/within/last", `"last" cannot be combined with "from" and "to"`},
		{`{"event": "E", "within": {"last": 7}}`, "/within/last", `"last" must be a duration such as "7d"`},
		{`{"event": "E", "within": {"last": "1.5h"}}`, "/within/last", `invalid duration "1.5h": want a positive integer and a unit s, m, h, d or w`},
		{`{"event": "E", "within": {"from": "2024-01-01T00:00:00Z"}}`, "/within/to", `missing "to"`},
		{`{"event": "E", "within": {"from": "yesterday", "to": "2024-01-01T00:00:00Z"}}`, "/within/from", `"from" must be an RFC 3339 date-time`},
		{`{"event": "E", "within": {"from": "2024-01-01T00:00:00Z", "to": "2024-01-02"}}`, "/within/to", `"to" must be an RFC 3339 date-time`},
		{`{"event": "E", "within": {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}}`, "/within", `"from" is after "to"`},
		{`{"event": "E", "within": {"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:30:00+01:00"}}`, "/within", `"from" is after "to"`},
	} {
		n, err := condition.Parse([]byte(tc.in))
		if err == nil {
			t.Errorf("Parse(%s) = %+v, want error", tc.in, n)
			continue
		}
		var ce *condition.Error
		if !errors.As(err, &ce) {
			t.Errorf("Parse(%s): error %T %v is not a *condition.Error", tc.in, err, err)
			continue
		}
		if ce.Path != tc.path || ce.Msg != tc.msg {
			t.Errorf("Parse(%.80s):\n got %q at %q\nwant %q at %q", tc.in, ce.Msg, ce.Path, tc.msg, tc.path)
		}
		if !errors.Is(err, condition.ErrInvalidCondition) {
			t.Errorf("Parse(%s): errors.Is(ErrInvalidCondition) is false", tc.in)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &condition.Error{Path: "/and/2/op", Msg: `unknown operator "x"`}
	if got, want := e.Error(), `unknown operator "x" (at /and/2/op)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	root := &condition.Error{Msg: "empty condition"}
	if got, want := root.Error(), "empty condition (at root)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("segment %q: %w", "s1", e)
	if !errors.Is(wrapped, condition.ErrInvalidCondition) {
		t.Error("wrapped *Error does not match ErrInvalidCondition")
	}
	var ce *condition.Error
	if !errors.As(wrapped, &ce) || ce.Path != "/and/2/op" {
		t.Error("errors.As does not recover the path")
	}
}

func TestParseValid(t *testing.T) {
	n := mustParse(t, `{"and": [
		{"trait": "Email", "op": "ends_with", "value": "@X.COM", "ignore_case": true},
		{"not": {"segment": "vip"}},
		{"or": [
			{"trait": "signup", "op": "between", "value": ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00+01:00"]},
			{"trait": "plan", "op": "in", "value": ["Pro", 3, true], "ignore_case": true},
			{"trait": "bio", "op": "matches", "value": "^a+$", "ignore_case": true},
			{"trait": "loc", "op": "near", "value": {"lat": 52.5, "lon": 13.4, "radius_km": 5}},
			{"trait": "seen", "op": "not_within_last", "value": "2w"},
			{"trait": "age", "op": "exists"}
		]},
		{"event": "Order", "where": [{"property": "a.b", "op": "gte", "value": 10}],
		 "count": {"op": "between", "value": [1, 3.0]},
		 "aggregate": {"fn": "avg", "property": "total", "op": "lt", "value": 99.5},
		 "within": {"from": "2024-01-01T00:00:00+02:00", "to": "2024-01-31T00:00:00Z"}},
		{"all": true}
	]}`)
	if n.Kind != condition.And || n.Path != "" || len(n.Children) != 5 {
		t.Fatalf("root = %+v", n)
	}
	email := n.Children[0]
	if email.Kind != condition.Trait || email.Path != "/and/0" || email.Name != "Email" ||
		email.Test.Op != condition.OpEndsWith || !email.Test.IgnoreCase ||
		email.Test.Value != "@X.COM" || email.Test.Scalar.Str != "@X.COM" || email.Test.Scalar.Fold != "@x.com" {
		t.Errorf("email = %+v / %+v", email, email.Test)
	}
	not := n.Children[1]
	if not.Kind != condition.Not || not.Path != "/and/1" || not.Children[0].Kind != condition.Segment ||
		not.Children[0].SegmentID != "vip" || not.Children[0].Path != "/and/1/not" {
		t.Errorf("not = %+v", not)
	}
	or := n.Children[2]
	signup := or.Children[0].Test
	if len(signup.List) != 2 || signup.List[0].Type != model.DateTime ||
		!signup.List[1].Time.Equal(time.Date(2024, 1, 31, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("signup = %+v", signup)
	}
	plan := or.Children[1].Test
	wantList := []condition.Scalar{
		{Type: model.String, Str: "Pro", Fold: "pro"},
		{Type: model.Number, Num: 3},
		{Type: model.Boolean, Bool: true},
	}
	if !reflect.DeepEqual(plan.List, wantList) || !reflect.DeepEqual(plan.Value, []any{"Pro", 3.0, true}) {
		t.Errorf("plan = %+v", plan)
	}
	if bio := or.Children[2].Test; bio.Regexp == nil || bio.Regexp.String() != "(?i)^a+$" || bio.Value != "^a+$" {
		t.Errorf("bio = %+v", bio)
	}
	loc := or.Children[3].Test
	if loc.Near != (condition.Geo{Lat: 52.5, Lon: 13.4, RadiusKm: 5}) ||
		!reflect.DeepEqual(loc.Value, map[string]any{"lat": 52.5, "lon": 13.4, "radius_km": 5.0}) {
		t.Errorf("loc = %+v", loc)
	}
	if seen := or.Children[4].Test; seen.Duration != 14*24*time.Hour {
		t.Errorf("seen = %+v", seen)
	}
	if age := or.Children[5].Test; age.Op != condition.OpExists || age.Value != nil {
		t.Errorf("age = %+v", age)
	}
	ev := n.Children[3]
	if ev.Kind != condition.Event || ev.Name != "Order" || len(ev.Where) != 1 ||
		ev.Where[0].Path != "/and/3/where/0" || ev.Where[0].Property != "a.b" ||
		ev.Where[0].Scalar != (condition.Scalar{Type: model.Number, Num: 10}) {
		t.Errorf("event = %+v", ev)
	}
	if *ev.Count != (condition.Cmp{Op: condition.OpBetween, Lo: 1, Hi: 3}) {
		t.Errorf("count = %+v", *ev.Count)
	}
	if a := ev.Aggregate; a.Fn != condition.FnAvg || a.Property != "total" || a.Op != condition.OpLt || a.Scalar.Num != 99.5 {
		t.Errorf("aggregate = %+v", a)
	}
	wantWin := condition.Window{Kind: condition.WindowRange,
		From: time.Date(2023, 12, 31, 22, 0, 0, 0, time.UTC), To: time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)}
	if w := ev.Window; w.Kind != wantWin.Kind || !w.From.Equal(wantWin.From) || !w.To.Equal(wantWin.To) {
		t.Errorf("window = %+v", w)
	}
	if all := n.Children[4]; all.Kind != condition.All || all.Path != "/and/4" {
		t.Errorf("all = %+v", all)
	}
}

func TestParseLimits(t *testing.T) {
	leaf := `{"trait": "t", "op": "eq", "value": 1}`
	many := func(k int) string {
		return `{"or": [` + strings.TrimSuffix(strings.Repeat(leaf+",", k), ",") + `]}`
	}
	nested := func(depth int) string { // depth levels in all, the innermost a leaf
		return strings.Repeat(`{"not": `, depth-1) + leaf + strings.Repeat(`}`, depth-1)
	}
	nestedAnd := func(depth int) string {
		return strings.Repeat(`{"and": [{"all": true}, `, depth-1) + leaf + strings.Repeat(`]}`, depth-1)
	}
	for _, ok := range []string{many(1000), many(condition.MaxLeaves), nested(32), nested(condition.MaxDepth), nestedAnd(condition.MaxDepth)} {
		if _, err := condition.Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%.60s...) = %v", ok, err)
		}
	}
	if n := mustParse(t, many(1000)); len(n.Leaves()) != 1000 || n.Leaves()[999].Path != "/or/999" {
		t.Errorf("1000 leaves: got %d", len(n.Leaves()))
	}
	for _, tc := range []struct{ in, path, msg string }{
		{many(condition.MaxLeaves + 1), "/or/10000", "more than 10000 leaf conditions"},
		{nested(condition.MaxDepth + 1), strings.Repeat("/not", condition.MaxDepth), "conditions nested more than 64 levels deep"},
		{nested(500), strings.Repeat("/not", condition.MaxDepth), "conditions nested more than 64 levels deep"},
		{nestedAnd(condition.MaxDepth + 1), strings.Repeat("/and/1", condition.MaxDepth-1) + "/and/0", "conditions nested more than 64 levels deep"},
	} {
		_, err := condition.Parse([]byte(tc.in))
		var ce *condition.Error
		if !errors.As(err, &ce) || ce.Path != tc.path || ce.Msg != tc.msg {
			t.Errorf("Parse(%.60s...) = %v, want %q at %q", tc.in, err, tc.msg, tc.path)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second},
		{"30m", 30 * time.Minute},
		{"12h", 12 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
		{"1s", time.Second},
		{"007d", 7 * 24 * time.Hour},
		{"15250w", 15250 * 7 * 24 * time.Hour},
	} {
		got, err := condition.ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "d", "7", "0s", "-1d", "+1d", "1.5h", "1h30m", "7D", "7 d", " 7d", "7ms", "1y", "99999999999999999999s", "15251w", "９d"} {
		if got, err := condition.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want error", in, got)
		}
	}
}

func TestNodeQueries(t *testing.T) {
	n := mustParse(t, `{"or": [
		{"trait": "plan", "op": "eq", "value": "pro"},
		{"and": [{"segment": "a"}, {"not": {"event": "Login", "within": {"last": "30d"}}}]},
		{"event": "Purchase", "where": [{"property": "ts", "op": "within_last", "value": "1d"}]},
		{"segment": "b"}, {"segment": "a"}, {"trait": "plan", "op": "exists"},
		{"all": true}, {"event": "Login"}, {"trait": "address.city", "op": "eq", "value": "x"}
	]}`)
	var paths []string
	for _, l := range n.Leaves() {
		paths = append(paths, l.Path)
	}
	want := []string{"/or/0", "/or/1/and/0", "/or/1/and/1/not", "/or/2", "/or/3", "/or/4", "/or/5", "/or/6", "/or/7", "/or/8"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("Leaves paths = %v, want %v", paths, want)
	}
	if got := n.SegmentRefs(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("SegmentRefs = %v", got)
	}
	if got := n.EventNames(); !reflect.DeepEqual(got, []string{"Login", "Purchase"}) {
		t.Errorf("EventNames = %v", got)
	}
	if got := n.TraitNames(); !reflect.DeepEqual(got, []string{"plan", "address.city"}) {
		t.Errorf("TraitNames = %v", got)
	}
	single := mustParse(t, `{"trait": "x", "op": "exists"}`)
	if l := single.Leaves(); len(l) != 1 || l[0] != single || l[0].Path != "" {
		t.Errorf("single leaf: %+v", l)
	}

	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"trait": "x", "op": "exists"}`, false},
		{`{"trait": "x", "op": "within_last", "value": "1d"}`, true},
		{`{"not": {"trait": "x", "op": "not_within_last", "value": "1d"}}`, true},
		{`{"event": "E"}`, false},
		{`{"event": "E", "within": {"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}}`, false},
		{`{"and": [{"all": true}, {"event": "E", "within": {"last": "7d"}}]}`, true},
		{`{"event": "E", "where": [{"property": "p", "op": "within_last", "value": "1h"}]}`, true},
		{`{"segment": "s"}`, false},
	} {
		if got := mustParse(t, tc.in).IsTimeDependent(); got != tc.want {
			t.Errorf("IsTimeDependent(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}

	for _, tc := range []struct {
		in     string
		want   condition.Cmp
		wantOK bool
	}{
		{`{"event": "E"}`, condition.Cmp{Op: condition.OpGte, Lo: 1}, true},
		{`{"event": "E", "count": {"op": "lt", "value": 3}}`, condition.Cmp{Op: condition.OpLt, Lo: 3}, true},
		{`{"event": "E", "aggregate": {"fn": "sum", "property": "p", "op": "gt", "value": 1}}`, condition.Cmp{}, false},
		{`{"event": "E", "count": {"op": "eq", "value": 0}, "aggregate": {"fn": "sum", "property": "p", "op": "gt", "value": 1}}`, condition.Cmp{Op: condition.OpEq}, true},
	} {
		got, ok := mustParse(t, tc.in).EffectiveCount()
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("EffectiveCount(%s) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestOpPositive(t *testing.T) {
	pairs := map[condition.Op]condition.Op{
		condition.OpNeq: condition.OpEq, condition.OpNotIn: condition.OpIn,
		condition.OpNotContains: condition.OpContains, condition.OpNotExists: condition.OpExists,
		condition.OpNotWithinLast: condition.OpWithinLast,
	}
	for neg, pos := range pairs {
		if got, ok := neg.Positive(); got != pos || !ok {
			t.Errorf("%s.Positive() = %s, %v", neg, got, ok)
		}
		if got, ok := pos.Positive(); got != pos || ok {
			t.Errorf("%s.Positive() = %s, %v", pos, got, ok)
		}
	}
}

func mustParse(t *testing.T, s string) *condition.Node {
	t.Helper()
	n, err := condition.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return n
}
