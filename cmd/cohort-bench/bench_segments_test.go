package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cohortdb/cohort/internal/bench"
)

func TestBenchSegmentsFlags(t *testing.T) {
	o, err := parseSegmentsFlags([]string{"--profiles", "10", "--events", "20", "--runs", "2", "--cpuprofile", "x.prof"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.data.Profiles != 10 || o.data.Events != 20 || o.runs != 2 || o.cpuprofile != "x.prof" || !o.data.InOrder {
		t.Fatalf("parsed %+v (events arrive in order by default)", o)
	}
	if o, err := parseSegmentsFlags([]string{"--arrival", "random"}, io.Discard); err != nil || o.data.InOrder {
		t.Errorf("--arrival random: %+v %v", o.data, err)
	}
	for _, bad := range [][]string{{"--profiles", "0"}, {"--runs", "0"}, {"--events", "-1"}, {"extra"}, {"--arrival", "sorted"},
		{"--checkpoint-events", "5"}, {"--index-dir", "d", "--checkpoint-events", "-1"}, {"--keep"}, {"--reopen"}} {
		if _, err := parseSegmentsFlags(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := selectCases("plan_eq,nope"); err == nil {
		t.Error("an unknown case was accepted")
	}
	if _, err := selectCases("except_segment"); err == nil {
		t.Error("a case whose referenced segment is missing was accepted")
	}
}

// TestBenchSegmentsSmall runs the whole command at a tiny scale and checks
// that every suite condition and every summary figure is printed.
func TestBenchSegmentsSmall(t *testing.T) {
	var out, errOut bytes.Buffer
	err := benchSegments(context.Background(), []string{"--profiles", "500", "--events", "5000", "--runs", "2"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	s := out.String()
	for _, c := range bench.Suite {
		if !strings.Contains(s, "| "+c.Name+" |") {
			t.Errorf("no row for %s", c.Name)
		}
	}
	for _, want := range []string{"median of medians:", "worst (max of all runs):", "build, every suite segment", "B/profile", "load:", "machine:"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestBenchSegmentsReopen runs the suite on an index a --keep run left,
// with --reopen: every case must have the size the loaded run gave.
func TestBenchSegmentsReopen(t *testing.T) {
	dir := t.TempDir() + "/ix"
	data := []string{"--profiles", "500", "--events", "5000", "--runs", "1", "--index-dir", dir}
	sizes := func(args ...string) map[string]string {
		var out, errOut bytes.Buffer
		if err := benchSegments(context.Background(), append(slices.Clone(data), args...), &out, &errOut); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, errOut.String())
		}
		got := map[string]string{}
		for _, line := range strings.Split(out.String(), "\n") {
			// | # | condition | leaves | size | ...
			if f := strings.Split(line, " | "); len(f) > 4 {
				got[f[1]] = f[3]
			}
		}
		return got
	}
	loaded := sizes("--keep")
	reopened := sizes("--reopen")
	for _, c := range bench.Suite {
		if loaded[c.Name] == "" || loaded[c.Name] != reopened[c.Name] {
			t.Errorf("%s: %q members loaded, %q reopened", c.Name, loaded[c.Name], reopened[c.Name])
		}
	}
	if _, err := bench.ReopenIndexStore(t.TempDir() + "/none"); err == nil {
		t.Error("reopened a directory no run kept")
	}
}
