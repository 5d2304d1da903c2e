package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestBenchRealtimeFlags(t *testing.T) {
	o, runs, err := parseRealtimeFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Segments != 200 || o.Profiles != 100000 || o.Rate != 50000 || o.Duration != 30*time.Second || o.Timers != 1000000 || runs != 1 {
		t.Errorf("defaults %+v runs %d", o, runs)
	}
	o, runs, err = parseRealtimeFlags(strings.Fields("--segments 20 --profiles 500 --rate 1000 --duration 6s --timers 0 --runs 3 --cpuprofile x.prof"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Segments != 20 || o.Profiles != 500 || o.Rate != 1000 || o.Duration != 6*time.Second || o.Timers != 0 || runs != 3 || o.CPUProfile != "x.prof" {
		t.Errorf("parsed %+v runs %d", o, runs)
	}
	for _, bad := range []string{"--rate 0", "--duration 1s", "--runs 0", "--segments 0", "extra", "--batch 600"} {
		var stderr bytes.Buffer
		if _, _, err := parseRealtimeFlags(strings.Fields(bad), &stderr); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBenchRealtimeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server for ~10 s")
	}
	var out, errOut bytes.Buffer
	args := strings.Fields("realtime --segments 12 --profiles 200 --rate 1000 --duration 5s --warmup 1s --timers 1000 --history 1000 --clients 4")
	if err := benchCmd(args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{"cohort-bench realtime", "machine", "accept-to-change", "server histogram", "end to end", "timers", "lateness", "exits"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
