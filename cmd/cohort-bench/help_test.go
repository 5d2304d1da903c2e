package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelp: cohort-bench -h names every subcommand, and each
// subcommand's -h lists its flags, environment and an example.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, &out, &out); code != 0 {
		t.Fatalf("cohort-bench -h exited %d", code)
	}
	for _, sub := range []string{"ingest", "segments", "realtime", "peers"} {
		if !strings.Contains(out.String(), "cohort-bench "+sub) {
			t.Errorf("cohort-bench -h does not list %s:\n%s", sub, out.String())
		}
	}
	for _, tc := range []struct {
		sub   string
		flags []string
	}{
		{"ingest", []string{"url", "write-key", "duration", "rate"}},
		{"segments", []string{"profiles", "events", "runs"}},
		{"realtime", []string{"segments", "profiles", "rate", "timers"}},
		{"peers", []string{"profiles", "events", "pg-url", "engines", "save", "merge"}},
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{tc.sub, "-h"}, &stdout, &stderr); code != 0 {
			t.Errorf("cohort-bench %s -h exited %d", tc.sub, code)
		}
		text := stdout.String() + stderr.String()
		for _, want := range []string{"cohort-bench " + tc.sub, "Environment:", "Example:", "Flags:"} {
			if !strings.Contains(text, want) {
				t.Errorf("cohort-bench %s -h has no %q", tc.sub, want)
			}
		}
		for _, f := range tc.flags {
			if !strings.Contains(text, "\n  -"+f+" ") && !strings.Contains(text, "\n  -"+f+"\n") {
				t.Errorf("cohort-bench %s -h does not list --%s", tc.sub, f)
			}
		}
	}
}

// TestEventsFollowProfiles: without --events a data set has 20 events per
// profile, not the 20M of the default size.
func TestEventsFollowProfiles(t *testing.T) {
	o, err := parseSegmentsFlags([]string{"--profiles", "20000"}, &bytes.Buffer{})
	if err != nil || o.data.Events != 400000 {
		t.Errorf("--profiles 20000: events %d (%v), want 400000", o.data.Events, err)
	}
	o, err = parseSegmentsFlags([]string{"--profiles", "20000", "--events", "5"}, &bytes.Buffer{})
	if err != nil || o.data.Events != 5 {
		t.Errorf("--events 5: events %d (%v)", o.data.Events, err)
	}
}
