package condition_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
)

// now is the evaluation instant of every semantic test case.
var now = time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)

// semanticCase is one line of testdata/values.jsonl or testdata/events.jsonl.
type semanticCase struct {
	Line   int
	Cond   json.RawMessage `json:"cond"`
	Value  json.RawMessage `json:"value"` // nil: missing; "null": a present null
	Traits map[string]any  `json:"traits"`
	Events []struct {
		Name  string         `json:"name"`
		At    time.Time      `json:"at"`
		Props map[string]any `json:"props"`
	} `json:"events"`
	Want *bool `json:"want"`
}

func loadCases(t *testing.T, file string) []semanticCase {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []semanticCase
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var c semanticCase
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil || c.Want == nil || c.Cond == nil {
			t.Fatalf("%s:%d: bad case (%v)", file, line, err)
		}
		c.Line = line
		out = append(out, c)
	}
	return out
}

func (c *semanticCase) traits(t *testing.T) map[string]any {
	if c.Value == nil {
		return c.Traits
	}
	var v any
	if err := json.Unmarshal(c.Value, &v); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"t": v}
}

func (c *semanticCase) events() []model.Event {
	var out []model.Event
	for _, e := range c.Events {
		out = append(out, model.Event{Name: e.Name, Timestamp: e.At, Properties: e.Props})
	}
	return out
}

func TestValueSemantics(t *testing.T) {
	for _, c := range loadCases(t, "testdata/values.jsonl") {
		n, err := condition.Parse(c.Cond)
		if err != nil {
			t.Errorf("values.jsonl:%d: %v", c.Line, err)
			continue
		}
		if n.Kind != condition.Trait {
			t.Fatalf("values.jsonl:%d: not a trait condition", c.Line)
		}
		v, ok := model.Lookup(c.traits(t), n.Name)
		if got := n.Test.Match(v, ok, now); got != *c.Want {
			t.Errorf("values.jsonl:%d: %s on %s: got %v, want %v", c.Line, c.Cond, c.Value, got, *c.Want)
		}
	}
}

func TestEventSemantics(t *testing.T) {
	for _, c := range loadCases(t, "testdata/events.jsonl") {
		n, err := condition.Parse(c.Cond)
		if err != nil {
			t.Errorf("events.jsonl:%d: %v", c.Line, err)
			continue
		}
		if got := evalEvent(n, c.events(), now); got != *c.Want {
			t.Errorf("events.jsonl:%d: %s: got %v, want %v", c.Line, c.Cond, got, *c.Want)
		}
	}
}

// evalEvent evaluates an event node from the package's exported pieces, as
// an index-based evaluator would combine them.
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
