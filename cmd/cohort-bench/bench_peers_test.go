package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
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
		Ran: bench.Engines,
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

// TestBenchPeersMerge saves runs of single engines and merges them: the
// table has every engine, sizes are checked across the files, and files of
// another data set or running an engine twice are refused.
func TestBenchPeersMerge(t *testing.T) {
	ms := time.Millisecond
	data := bench.Data{Profiles: 10, Events: 20, Seed: 1, InOrder: true}
	part := func(engine string, size uint64, d time.Duration) *bench.PeersResult {
		r := &bench.PeersResult{Data: data, Runs: 3, Ran: []string{engine},
			Notes:   []bench.RunNote{{Engines: []string{engine}, Machine: "m-" + engine, LoadAvg: "0.5"}},
			Engines: []bench.EngineStats{{Engine: engine, Load: time.Second}}}
		c := bench.PeerCase{Name: "a"}
		switch engine {
		case bench.EngineCohort:
			c.CohortSize, c.Cohort = size, d
		case bench.EnginePostgres:
			c.PGSize, c.PG = size, d
		case bench.EngineDuckDB:
			c.DuckSize, c.Duck = size, d
		}
		r.Cases = []bench.PeerCase{c}
		return r
	}
	dir := t.TempDir()
	save := func(name string, r *bench.PeersResult) string {
		p := dir + "/" + name
		if err := savePeers(p, r); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := save("c.json", part(bench.EngineCohort, 5, ms))
	p := save("p.json", part(bench.EnginePostgres, 5, 600*ms))
	d := save("d.json", part(bench.EngineDuckDB, 5, 60*ms))

	var out bytes.Buffer
	if err := benchPeers(t.Context(), []string{"--merge", c + "," + p + "," + d}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 1 | a | 5 | 1.00 ms | 600 ms | 60.0 ms | 600× | 60.0× |", "postgres ran on m-postgres",
		"median condition: PostgreSQL ÷ Cohort 600×, DuckDB ÷ Cohort 60.0×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("merged output lacks %q:\n%s", want, out.String())
		}
	}

	// A size that differs between files fails the merge.
	bad := save("bad.json", part(bench.EngineDuckDB, 6, 60*ms))
	out.Reset()
	err := benchPeers(t.Context(), []string{"--merge", c + "," + bad}, &out, io.Discard)
	var mm *bench.SizeMismatchError
	if !errors.As(err, &mm) || !strings.Contains(out.String(), "MISMATCH Cohort 5, PostgreSQL —, DuckDB 6") {
		t.Errorf("size mismatch across files: err %v, output:\n%s", err, out.String())
	}
	// The same engine twice, or another data set, is refused.
	if err := benchPeers(t.Context(), []string{"--merge", c + "," + c}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "ran cohort again") {
		t.Errorf("an engine merged twice: %v", err)
	}
	other := part(bench.EnginePostgres, 5, ms)
	other.Data.Seed = 2
	if err := benchPeers(t.Context(), []string{"--merge", c + "," + save("o.json", other)}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "another data set") {
		t.Errorf("another data set merged: %v", err)
	}
	// One engine alone prints its times and no ratios.
	out.Reset()
	if err := benchPeers(t.Context(), []string{"--merge", p}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "| 1 | a | 5 | — | 600 ms | — | — | — |") || !strings.Contains(s, "no ratios") || strings.Contains(s, "faster") {
		t.Errorf("one engine:\n%s", s)
	}
	if _, err := parsePeersFlags([]string{"--engines", "cohort,mysql"}, io.Discard, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), `unknown engine "mysql"`) {
		t.Errorf("--engines mysql: %v", err)
	}
}

// TestBenchPeersIndexDir: Cohort's side on the index a segments --keep run
// left gives every condition the size of the data set loaded in memory,
// and says it opened the files.
func TestBenchPeersIndexDir(t *testing.T) {
	dir := t.TempDir() + "/ix"
	data := []string{"--profiles", "400", "--events", "4000"}
	if err := benchSegments(context.Background(), append(slices.Clone(data), "--runs", "1", "--index-dir", dir, "--keep"), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) *bench.PeersResult {
		t.Helper()
		save := t.TempDir() + "/r.json"
		args = append(slices.Clone(data), append(args, "--runs", "1", "--engines", "cohort", "--save", save)...)
		if err := benchPeers(context.Background(), args, io.Discard, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		res, err := mergePeers([]string{save})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	loaded, opened := run(), run("--index-dir", dir)
	if len(loaded.Cases) != len(bench.Suite) || len(opened.Cases) != len(loaded.Cases) {
		t.Fatalf("%d and %d cases, want %d", len(loaded.Cases), len(opened.Cases), len(bench.Suite))
	}
	for i, c := range loaded.Cases {
		if o := opened.Cases[i]; o.Name != c.Name || o.CohortSize != c.CohortSize {
			t.Errorf("%s: %d members loaded, %s: %d opened from the files", c.Name, c.CohortSize, o.Name, o.CohortSize)
		}
	}
	if v := opened.Engines[0].Version; !strings.Contains(v, "opened from files") {
		t.Errorf("the opened run's engine says %q", v)
	}
}
