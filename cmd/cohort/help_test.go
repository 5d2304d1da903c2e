package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelp: `cohort --help` names every command, and every command's -h
// lists its flags, the environment it reads and an example, and exits 0.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, &out); code != 0 {
		t.Fatalf("cohort --help exited %d", code)
	}
	for _, want := range []string{"cohort serve", "cohort import", "cohort gen", "cohort version",
		"cohort-bench", "ingest|segments|realtime|peers", "COHORT_WRITE_KEY", "Example:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("cohort --help does not mention %q:\n%s", want, out.String())
		}
	}
	for _, tc := range []struct {
		cmd   string
		flags []string
		env   []string
	}{
		{"serve", []string{"http", "data", "config"}, []string{"COHORT_WRITE_KEY", "COHORT_API_KEY", "COHORT_ADMIN_KEY"}},
		{"import", []string{"server", "write-key", "data", "create", "config", "workspace", "batch", "id-column"}, []string{"COHORT_WRITE_KEY"}},
		{"gen", []string{"profiles", "events", "seed", "days", "now", "out"}, nil},
	} {
		for _, h := range []string{"-h", "--help"} {
			var stdout, stderr bytes.Buffer
			if code := run([]string{tc.cmd, h}, &stdout, &stderr); code != 0 {
				t.Errorf("cohort %s %s exited %d", tc.cmd, h, code)
			}
			text := stdout.String() + stderr.String()
			for _, want := range []string{"Usage: cohort " + tc.cmd, "Environment", "Example", "Flags:"} {
				if !strings.Contains(text, want) {
					t.Errorf("cohort %s %s has no %q:\n%s", tc.cmd, h, want, text)
				}
			}
			for _, f := range tc.flags {
				if !strings.Contains(text, "\n  -"+f+" ") && !strings.Contains(text, "\n  -"+f+"\n") {
					t.Errorf("cohort %s %s does not list --%s", tc.cmd, h, f)
				}
			}
			for _, e := range tc.env {
				if !strings.Contains(text, e) {
					t.Errorf("cohort %s %s does not mention %s", tc.cmd, h, e)
				}
			}
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"bench", "segments"}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "go run ./cmd/cohort-bench segments") {
		t.Errorf("cohort bench: exit %d, %q; want 2 and a pointer to cohort-bench", code, stderr.String())
	}
}
