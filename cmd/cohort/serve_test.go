package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeReportsEveryConfigProblem: `cohort serve --config` with a bad
// file exits 1 naming every problem of the file (decoding and range
// checks) at once, and opens nothing.
func TestServeReportsEveryConfigProblem(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cohort.yaml")
	os.WriteFile(cfg, []byte("retention: 12h\nlimits:\n  max_event_name: 10\n  events_per_second: fast\n  burst: -1\n"), 0o644)
	var stdout, stderr bytes.Buffer
	data := filepath.Join(dir, "data")
	if code := run([]string{"serve", "--config", cfg, "--data", data}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, &stderr)
	}
	for _, want := range []string{
		"line 3: limits.max_event_name: unknown key; did you mean max_event_names?",
		`line 4: limits.events_per_second: want a number, got "fast"`,
		"retention: 12h is less than a day",
		"limits.burst: -1 must not be negative",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, &stderr)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a bad configuration created the data directory (%v)", err)
	}
}
