package oracle_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
)

// The oracle and package condition implement the value semantics
// independently; these tests check that they agree on many random
// operator/operand/value combinations (deterministic seeds).

var valuePool = []string{
	`null`, `0`, `1`, `1.5`, `10`, `-3`, `2017`, `""`, `"a"`, `"A"`, `"abc"`, `"ABC"`, `"Pop"`,
	`"k-pop"`, `"10"`, `"2024-01-01T00:00:00Z"`, `"2023-12-31T23:30:00Z"`, `"2024-01-01T00:00:00+01:00"`,
	`"2024-06-15T11:00:00+02:00"`, `"2024-06-08T12:00:00Z"`, `"2024-06-15T12:00:00Z"`, `"2030-01-01T00:00:00Z"`,
	`"52.5, 13.4"`, `"x@gmail.com"`, `true`, `false`, `[]`, `[1, "a", "Pop"]`, `["2024-01-01T00:00:00Z"]`,
	`{"lat": 52.52, "lon": 13.405}`, `{"lat": 0, "lon": 0}`, `{"a": 1}`,
}

var scalarPool = []string{`0`, `1`, `10`, `2017`, `-3`, `1.5`, `""`, `"a"`, `"abc"`, `"Pop"`, `"pop"`, `"10"`,
	`"2024-01-01T00:00:00Z"`, `"2023-12-31T23:30:00Z"`, `"2024-06-15T12:00:00Z"`, `true`, `false`}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// randomTest returns the "op", "value" and "ignore_case" members of a
// random test, as JSON object members.
func randomTest(r *rand.Rand) string {
	ops := []string{"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with",
		"matches", "gt", "gte", "lt", "lte", "between", "exists", "not_exists", "within_last",
		"not_within_last", "near"}
	op := pick(r, ops)
	var value string
	switch op {
	case "eq", "neq", "contains", "not_contains":
		value = pick(r, scalarPool)
	case "gt", "gte", "lt", "lte":
		value = pick(r, scalarPool[:len(scalarPool)-2]) // no booleans
	case "in", "not_in":
		var els []string
		for range 1 + r.IntN(3) {
			els = append(els, pick(r, scalarPool))
		}
		value = "[" + strings.Join(els, ",") + "]"
	case "starts_with", "ends_with":
		value = pick(r, []string{`""`, `"a"`, `"AB"`, `"Pop"`, `"2024"`, `"@gmail.com"`})
	case "matches":
		value = pick(r, []string{`"^a"`, `"b"`, `"(?i)pop"`, `"^\\d+$"`, `"\\D"`, `"."`, `"^$"`})
	case "between":
		value = pick(r, []string{`[0, 10]`, `[1, 1]`, `[-5, 1.5]`, `[2000, 2020]`,
			`["2023-12-31T00:00:00Z", "2024-01-01T00:00:00Z"]`, `["2024-06-01T00:00:00Z", "2024-06-15T12:00:00Z"]`})
	case "within_last", "not_within_last":
		value = pick(r, []string{`"1h"`, `"1d"`, `"7d"`, `"30d"`, `"1w"`})
	case "near":
		value = fmt.Sprintf(`{"lat": 52.52, "lon": 13.405, "radius_km": %s}`, pick(r, []string{"0", "1", "10", "100000"}))
	}
	s := fmt.Sprintf(`"op": %q`, op)
	if value != "" {
		s += `, "value": ` + value
	}
	if condition.Op(op).IsString() && r.IntN(2) == 0 {
		s += `, "ignore_case": true`
	}
	return s
}

func decode(t *testing.T, s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAgreesWithConditionTraits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const runs = 10000
	matched := 0
	for range runs {
		cond := `{"trait": "t", ` + randomTest(r) + `}`
		n := mustParse(t, cond)
		present := r.IntN(8) != 0
		raw := pick(r, valuePool)
		traits := map[string]any{}
		if present {
			traits["t"] = decode(t, raw)
		} else {
			raw = "(missing)"
		}
		v, ok := traits["t"]
		want := n.Test.Match(v, ok, now)
		if got := oracle.Match(n, oracle.Input{Traits: traits}, now); got != want {
			t.Fatalf("%s on %s: oracle %v, condition %v", cond, raw, got, want)
		}
		if want {
			matched++
		}
	}
	checkBalance(t, matched, runs)
}

func TestAgreesWithConditionEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const runs = 5000
	matched := 0
	ages := []time.Duration{-time.Hour, 0, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 7*24*time.Hour + time.Second, 40 * 24 * time.Hour}
	for range runs {
		var parts []string
		parts = append(parts, `"event": "E"`)
		if r.IntN(2) == 0 {
			var preds []string
			for range 1 + r.IntN(2) {
				preds = append(preds, `{"property": "p", `+randomTest(r)+`}`)
			}
			parts = append(parts, `"where": [`+strings.Join(preds, ",")+`]`)
		}
		if r.IntN(2) == 0 {
			parts = append(parts, pick(r, []string{`"count": {"op": "eq", "value": 0}`, `"count": {"op": "lt", "value": 2}`,
				`"count": {"op": "gte", "value": 2}`, `"count": {"op": "between", "value": [1, 3]}`, `"count": {"op": "neq", "value": 1}`}))
		}
		if r.IntN(2) == 0 {
			parts = append(parts, fmt.Sprintf(`"aggregate": {"fn": %q, "property": "n", %s}`,
				pick(r, []string{"sum", "avg", "min", "max", "distinct"}),
				pick(r, []string{`"op": "eq", "value": 0`, `"op": "neq", "value": 1`, `"op": "gt", "value": 1`,
					`"op": "lte", "value": 10`, `"op": "between", "value": [1, 3]`, `"op": "in", "value": [0, 2]`, `"op": "not_in", "value": [1]`})))
		}
		if r.IntN(2) == 0 {
			parts = append(parts, pick(r, []string{`"within": {"last": "7d"}`, `"within": {"last": "1d"}`,
				`"within": {"from": "2024-06-08T12:00:00Z", "to": "2024-06-15T11:00:00Z"}`}))
		}
		cond := "{" + strings.Join(parts, ", ") + "}"
		n := mustParse(t, cond)
		var events []model.Event
		for range r.IntN(6) {
			props := map[string]any{}
			if r.IntN(4) != 0 {
				props["p"] = decode(t, pick(r, valuePool))
			}
			if r.IntN(4) != 0 {
				props["n"] = decode(t, pick(r, []string{`0`, `1`, `2`, `2.5`, `-1`, `"2"`, `null`, `"x"`}))
			}
			events = append(events, model.Event{Name: pick(r, []string{"E", "E", "F"}), Timestamp: now.Add(-pick(r, ages)), Properties: props})
		}
		want := evalEvent(n, events, now)
		if got := oracle.Match(n, oracle.Input{Events: events}, now); got != want {
			t.Fatalf("%s on %+v: oracle %v, condition %v", cond, events, got, want)
		}
		if want {
			matched++
		}
	}
	checkBalance(t, matched, runs)
}

// checkBalance guards against a degenerate generator: both outcomes must
// be common.
func checkBalance(t *testing.T, matched, runs int) {
	t.Helper()
	t.Logf("%d of %d matched", matched, runs)
	if matched < runs/10 || matched > runs*9/10 {
		t.Errorf("%d of %d cases matched: the generator is unbalanced", matched, runs)
	}
}

// evalEvent evaluates an event node with package condition's exported
// pieces, the way an index-based evaluator combines them.
func evalEvent(n *condition.Node, events []model.Event, now time.Time) bool {
	var count int64
	var agg *condition.AggState
	if n.Aggregate != nil {
		agg = n.Aggregate.NewState()
	}
next:
	for _, e := range events {
		if e.Name != n.Name || !n.Window.Contains(e.Timestamp, now) {
			continue
		}
		for i := range n.Where {
			v, ok := model.Lookup(e.Properties, n.Where[i].Property)
			if !n.Where[i].Match(v, ok, now) {
				continue next
			}
		}
		count++
		if agg != nil {
			agg.Add(model.Lookup(e.Properties, n.Aggregate.Property))
		}
	}
	if c, ok := n.EffectiveCount(); ok && !c.Match(count) {
		return false
	}
	if agg != nil {
		return n.Aggregate.Match(agg.Result())
	}
	return true
}
