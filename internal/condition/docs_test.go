package condition

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConditionsDoc keeps docs/conditions.md true: every operator has a
// row, every example in the operator table parses, and every example in
// the error table fails with the path the table gives.
func TestConditionsDoc(t *testing.T) {
	raw, err := os.ReadFile("../../docs/conditions.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	section := func(title string) string {
		_, rest, ok := strings.Cut(doc, "\n## "+title+"\n")
		if !ok {
			t.Fatalf("docs/conditions.md has no section %q", title)
		}
		body, _, _ := strings.Cut(rest, "\n## ")
		return body
	}
	ops := section("Operators")
	for _, op := range []Op{OpEq, OpNeq, OpIn, OpNotIn, OpContains, OpNotContains, OpStartsWith,
		OpEndsWith, OpMatches, OpGt, OpGte, OpLt, OpLte, OpBetween, OpExists, OpNotExists,
		OpWithinLast, OpNotWithinLast, OpNear} {
		if !op.Valid() || !strings.Contains(ops, "`"+string(op)+"`") {
			t.Errorf("operator %q has no row in the Operators table", op)
		}
	}
	example := regexp.MustCompile("`(\\{\"(?:trait|event)\".*?\\})`")
	n := 0
	for _, line := range strings.Split(ops, "\n") {
		for _, m := range example.FindAllStringSubmatch(line, -1) {
			cond := strings.ReplaceAll(m[1], `\|`, `|`) // a pipe escaped for the table
			if _, err := Parse([]byte(cond)); err != nil {
				t.Errorf("operator example %s: %v", cond, err)
			}
			n++
		}
	}
	if n < 16 { // gt, gte, lt and lte share a row
		t.Errorf("%d operator examples parsed, want one a row", n)
	}

	// Error table rows: | problem | `condition` | `message`, `/path` |
	row := regexp.MustCompile("^\\| [^|]+ \\| `(\\{.*\\})` \\| `(.*)`, `(/[^`]*)` \\|$")
	n = 0
	for _, line := range strings.Split(section("Errors"), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n++
		_, err := Parse([]byte(m[1]))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("error example %s: err = %v, want a condition error", m[1], err)
			continue
		}
		msg := strings.TrimSuffix(m[2], "...")
		if ce.Path != m[3] || !strings.HasPrefix(ce.Msg, msg) {
			t.Errorf("error example %s: %q at %q; the doc says %q at %q", m[1], ce.Msg, ce.Path, m[2], m[3])
		}
	}
	if n < 8 {
		t.Errorf("only %d rows of the error table were checked", n)
	}
}
