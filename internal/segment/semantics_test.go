package segment

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// The operator edge cases of internal/condition/testdata (missing values,
// nulls, type mismatches, ignore_case, inclusive bounds, count 0,
// aggregates over no events, window edges, …), which the condition
// package and the oracle already run, run here through the two real
// evaluators: the bitmap evaluation over the index and the per-profile
// evaluation of the real-time path.

var semNow = time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)

type semCase struct {
	Line   int
	Cond   json.RawMessage `json:"cond"`
	Value  json.RawMessage `json:"value"`
	Traits map[string]any  `json:"traits"`
	Events []struct {
		Name  string         `json:"name"`
		At    time.Time      `json:"at"`
		Props map[string]any `json:"props"`
	} `json:"events"`
	Want *bool `json:"want"`
}

func loadSem(t *testing.T, file string) []semCase {
	f, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []semCase
	sc := bufio.NewScanner(bytes.NewReader(f))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var c semCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s:%d: %v", file, line, err)
		}
		c.Line = line
		out = append(out, c)
	}
	return out
}

func (c *semCase) traits(t *testing.T) map[string]any {
	if c.Traits != nil {
		return c.Traits
	}
	if c.Value == nil {
		return map[string]any{}
	}
	var v any
	if err := json.Unmarshal(c.Value, &v); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"t": v}
}

func TestOperatorTablesOnBothEvaluators(t *testing.T) {
	ran := 0
	defer func() {
		if ran < 250 {
			t.Errorf("only %d table cases ran", ran)
		}
	}()
	for _, file := range []string{"../condition/testdata/values.jsonl", "../condition/testdata/events.jsonl"} {
		for _, c := range loadSem(t, file) {
			if c.Want == nil {
				continue
			}
			n, err := condition.Parse(c.Cond)
			if err != nil {
				t.Errorf("%s:%d: %v", file, c.Line, err)
				continue
			}
			ran++
			// Profile 1 is the case's; profile 0 has nothing, so the
			// complements and count-0 answers are exercised against a
			// second member of the universe.
			ix := index.New()
			ch := &ingest.Changes{Profiles: []ingest.ProfileChange{
				{Num: 0, NewID: "empty", New: map[string]any{}},
				{Num: 1, NewID: "p", New: c.traits(t)},
			}}
			for i, e := range c.Events {
				ch.Events = append(ch.Events, ingest.EventAdded{Num: 1, Seq: uint64(i + 1), Name: e.Name, Timestamp: e.At, Properties: e.Props})
			}
			ix.Apply(ch)
			res, err := Evaluate(ix, n, semNow, nil, true)
			if err != nil {
				t.Fatalf("%s:%d: %v", file, c.Line, err)
			}
			if got := res.Members.Contains(1); got != *c.Want {
				t.Errorf("%s:%d: bitmap evaluation of %s: got %v, want %v", file, c.Line, c.Cond, got, *c.Want)
			}
			pe := newProfileEval(ix, 1, c.traits(t), semNow, func(string) bool { return false })
			if got := pe.match(n); got != *c.Want {
				t.Errorf("%s:%d: per-profile evaluation of %s: got %v, want %v", file, c.Line, c.Cond, got, *c.Want)
			}
			// The empty profile must agree between the two evaluators too.
			pe0 := newProfileEval(ix, 0, map[string]any{}, semNow, func(string) bool { return false })
			if a, b := res.Members.Contains(0), pe0.match(n); a != b {
				t.Errorf("%s:%d: %s on an empty profile: bitmap %v, per-profile %v", file, c.Line, c.Cond, a, b)
			}
		}
	}
}
