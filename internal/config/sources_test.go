package config

import (
	"os"
	"strings"
	"testing"
)

func TestSourcesGood(t *testing.T) {
	c, err := Load("testdata/sources.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("good sources: %v", err)
	}
	if len(c.Sources) != 3 || c.Sources[1].Tables[0].Columns["created_at"] != "signed_up_at" || c.Sources[2].Derived[0].Trait != "order_total" {
		t.Errorf("loaded %+v", c.Sources)
	}
}

// TestSourcesBad checks that every problem of the sources list is
// reported at once, in the exact words of testdata/sources.bad.errors.
func TestSourcesBad(t *testing.T) {
	c, err := Load("testdata/sources.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	got := validateSources(c.Sources)
	want, err := os.ReadFile("testdata/sources.bad.errors")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(want)), "\n")
	if len(got) != len(lines) {
		for _, e := range got {
			t.Log(e)
		}
		t.Fatalf("%d errors, want %d", len(got), len(lines))
	}
	for i, e := range got {
		if e.Error() != lines[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, e, lines[i])
		}
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), lines[0]) {
		t.Errorf("Validate does not report the sources' problems: %v", err)
	}
}
