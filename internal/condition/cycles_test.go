package condition_test

import (
	"errors"
	"testing"

	"github.com/cohortdb/cohort/internal/condition"
)

func TestCheckCycles(t *testing.T) {
	stored := map[string]string{
		"b":      `{"segment": "c"}`,
		"c":      `{"and": [{"all": true}, {"not": {"segment": "a"}}]}`,
		"d":      `{"trait": "x", "op": "exists"}`,
		"e":      `{"or": [{"segment": "d"}, {"segment": "f"}]}`,
		"f":      `{"segment": "d"}`,
		"loop1":  `{"segment": "loop2"}`,
		"loop2":  `{"segment": "loop1"}`,
		"broken": `{"and": [{"segment": "d"}, {"segment": "gone"}]}`,
		"a":      `{"all": true}`, // a stale stored version of the segment being checked
	}
	for _, tc := range []struct {
		name, id, cond string
		path, msg      string // empty msg: no error
	}{
		{"self", "a", `{"or": [{"all": true}, {"segment": "a"}]}`, "/or/1", `segment "a" references itself`},
		{"self root", "a", `{"segment": "a"}`, "", `segment "a" references itself`},
		{"through others", "a", `{"and": [{"trait": "t", "op": "exists"}, {"segment": "b"}]}`, "/and/1", "segment reference cycle: a -> b -> c -> a"},
		{"unknown", "a", `{"and": [{"segment": "d"}, {"not": {"segment": "x"}}]}`, "/and/1/not", `unknown segment "x"`},
		{"unknown indirect", "a", `{"or": [{"segment": "broken"}]}`, "/or/0", `unknown segment "gone" (referenced by segment "broken")`},
		{"cycle among others", "a", `{"or": [{"segment": "d"}, {"segment": "loop1"}]}`, "/or/1", "segment reference cycle: loop1 -> loop2 -> loop1"},
		{"diamond", "a", `{"and": [{"segment": "e"}, {"segment": "f"}, {"segment": "d"}]}`, "", ""},
		{"no refs", "a", `{"all": true}`, "", ""},
		{"new id", "new", `{"segment": "c"}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookups := map[string]int{}
			lookup := func(id string) (*condition.Node, bool) {
				lookups[id]++
				s, ok := stored[id]
				if !ok {
					return nil, false
				}
				return mustParse(t, s), true
			}
			err := condition.CheckCycles(tc.id, mustParse(t, tc.cond), lookup)
			if lookups[tc.id] != 0 {
				t.Errorf("lookup asked for the checked segment %q", tc.id)
			}
			for id, n := range lookups {
				if n > 1 {
					t.Errorf("lookup(%q) called %d times", id, n)
				}
			}
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("CheckCycles = %v, want nil", err)
				}
				return
			}
			var ce *condition.Error
			if !errors.As(err, &ce) || ce.Path != tc.path || ce.Msg != tc.msg {
				t.Fatalf("CheckCycles = %v, want %q at %q", err, tc.msg, tc.path)
			}
			if !errors.Is(err, condition.ErrInvalidCondition) {
				t.Error("cycle error does not match ErrInvalidCondition")
			}
		})
	}
}

func TestCheckCyclesNilNode(t *testing.T) {
	lookup := func(string) (*condition.Node, bool) { return nil, true }
	if err := condition.CheckCycles("a", mustParse(t, `{"segment": "b"}`), lookup); err != nil {
		t.Fatal(err)
	}
}
