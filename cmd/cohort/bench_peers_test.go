package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
)

func TestBenchPeersFlags(t *testing.T) {
	env := func(k string) string {
		if k == "COHORT_PG_URL" {
			return "postgres://from-env"
		}
		return ""
	}
	o, err := parsePeersFlags([]string{"--profiles", "10", "--events", "20"}, io.Discard, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.pgURL != "postgres://from-env" || o.runs != 3 {
		t.Fatalf("parsed %+v", o)
	}
	o, err = parsePeersFlags([]string{"--pg-url", "postgres://flag"}, io.Discard, env)
	if err != nil || o.pgURL != "postgres://flag" {
		t.Fatalf("--pg-url should win over the environment: %+v %v", o, err)
	}
	if _, err := parsePeersFlags([]string{"--runs", "0"}, io.Discard, env); err == nil {
		t.Error("--runs 0 accepted")
	}
}

func TestBenchPeersPrint(t *testing.T) {
	ms := time.Millisecond
	res := &bench.PeersResult{
		Cases: []bench.PeerCase{
			{Name: "a", CohortSize: 5, PGSize: 5, DuckSize: 5, Cohort: ms, PG: 600 * ms, Duck: 60 * ms},
			{Name: "b", CohortSize: 7, PGSize: 8, DuckSize: 7, Cohort: 10 * ms, PG: 5 * ms, Duck: 20 * ms},
		},
		Engines: []bench.EngineStats{{Engine: "Cohort", Load: time.Second, Memory: 3 << 20}, {Engine: "PostgreSQL", Load: time.Minute, Memory: 1 << 30, Disk: 5 << 30}},
	}
	var out bytes.Buffer
	printPeers(&out, peersOpts{data: bench.Data{Profiles: 1, Events: 2}, runs: 3}, res, bench.Machine{CPU: "x", NumCPU: 2})
	s := out.String()
	for _, want := range []string{"| 1 | a | 5 | 1.00 ms | 600 ms | 60.0 ms | 600× | 60.0× |", "MISMATCH Cohort 7, PostgreSQL 8, DuckDB 7",
		"Cohort is slower than a peer on: [b]", "| PostgreSQL | 1m0s | 1.00 GiB | 5.00 GiB |"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
