package condition_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
)

// FuzzParse checks that Parse never panics, that every failure is a
// *condition.Error whose path locates the problem, and that every success
// yields nodes whose paths point into the document and whose tests can be
// evaluated on values of any type. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"and": [{"trait": "plan", "op": "eq", "value": "pro"}, {"not": {"event": "App Opened", "within": {"last": "30d"}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := condition.Parse(data)
		if err != nil {
			var ce *condition.Error
			if !errors.As(err, &ce) || !errors.Is(err, condition.ErrInvalidCondition) {
				t.Fatalf("error %T %v is not a *condition.Error", err, err)
			}
			if ce.Msg == "" {
				t.Fatal("empty error message")
			}
			var doc any
			if json.Unmarshal(data, &doc) == nil && !strings.HasPrefix(ce.Msg, "invalid JSON") {
				// The path, or for a missing key its parent, exists.
				if _, ok := resolve(doc, ce.Path); !ok {
					if _, ok := resolve(doc, parent(ce.Path)); !ok {
						t.Fatalf("error path %q of %q does not resolve", ce.Path, ce.Msg)
					}
				}
			}
			return
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("Parse accepted what encoding/json refuses: %v", err)
		}
		if len(n.Leaves()) > condition.MaxLeaves {
			t.Fatalf("%d leaves", len(n.Leaves()))
		}
		n.SegmentRefs()
		n.EventNames()
		n.TraitNames()
		n.IsTimeDependent()
		values := []any{nil, "x", "2024-01-01T00:00:00Z", "1, 2", 1.5, json.Number("3"), true,
			[]any{"x", 1.0}, map[string]any{"lat": 1.0, "lon": 2.0}}
		now := time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)
		n.Walk(func(x *condition.Node) bool {
			v, ok := resolve(doc, x.Path)
			if _, isObj := v.(map[string]any); !ok || !isObj {
				t.Fatalf("node path %q does not point at an object", x.Path)
			}
			var tests []*condition.Test
			switch x.Kind {
			case condition.Trait:
				tests = append(tests, x.Test)
			case condition.Event:
				for i := range x.Where {
					tests = append(tests, &x.Where[i].Test)
				}
				if x.Aggregate != nil {
					st := x.Aggregate.NewState()
					for _, v := range values {
						st.Add(v, true)
					}
					x.Aggregate.Match(st.Result())
				}
				x.Window.Contains(now, now)
				if c, ok := x.EffectiveCount(); ok {
					c.Match(0)
				}
			}
			for _, tt := range tests {
				for _, v := range values {
					if pos, neg := tt.Op.Positive(); neg {
						p := *tt
						p.Op = pos
						if tt.Match(v, true, now) == p.Match(v, true, now) {
							t.Fatalf("%s is not the complement of %s on %v", tt.Op, pos, v)
						}
					}
				}
				if pos, neg := tt.Op.Positive(); neg && tt.Match(nil, false, now) != true {
					t.Fatalf("%s (complement of %s) does not match a missing value", tt.Op, pos)
				}
			}
			return true
		})
	})
}

// resolve follows an RFC 6901 pointer in a decoded JSON document.
func resolve(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := doc.(type) {
		case map[string]any:
			v, ok := x[tok]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			doc = x[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

func parent(ptr string) string {
	if i := strings.LastIndexByte(ptr, '/'); i >= 0 {
		return ptr[:i]
	}
	return ""
}

// BenchmarkParse parses a condition of 1,000 leaves.
func BenchmarkParse(b *testing.B) {
	leaf := `{"event": "Added To Cart", "where": [{"property": "product_category", "op": "eq", "value": "Electronics", "ignore_case": true}], "count": {"op": "eq", "value": 3}, "within": {"last": "7d"}}`
	raw := []byte(`{"or": [` + strings.TrimSuffix(strings.Repeat(leaf+",", 1000), ",") + `]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := condition.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}
