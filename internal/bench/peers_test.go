package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeersSmall runs the peers comparison at a small scale: every suite
// condition on Cohort, PostgreSQL and DuckDB over the same 2,000 profiles
// and 20,000 events, failing on any size mismatch. It keeps the SQL
// translator and the loaders honest. PostgreSQL is COHORT_PG_URL when set
// and reachable, else a private server this test starts from the postgresql package's
// binaries (initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin; as
// root it runs them as user postgres). It never skips: without either, it
// fails. It runs PostgreSQL apart from the other two and merges the
// results, as a run at scale does (the data is generated twice, equal).
func TestPeersSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	url := os.Getenv("COHORT_PG_URL")
	if url != "" {
		if err := PGReachable(ctx, url); err != nil {
			t.Logf("COHORT_PG_URL is not reachable (%v): starting a private server", err)
			url = ""
		}
	}
	opts := PeersOptions{
		Data:    Data{Profiles: 2000, Events: 20000, Seed: 11},
		Runs:    1,
		PGURL:   url,
		Batch:   3000,
		Log:     &log,
		Engines: map[string]bool{EngineCohort: true, EngineDuckDB: true},
		Dir:     filepath.Join(t.TempDir(), "not", "yet"), // --dir need not exist
	}
	part1, err := RunPeers(ctx, opts)
	if err != nil {
		t.Fatalf("Cohort and DuckDB: %v\n%s", err, log.String())
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, "peers.duckdb")); err != nil {
		t.Errorf("the DuckDB file is not in --dir: %v", err)
	}
	opts.Dir = ""
	opts.Engines = map[string]bool{EnginePostgres: true}
	part2, err := RunPeers(ctx, opts)
	if err != nil {
		t.Fatalf("PostgreSQL: %v\n%s", err, log.String())
	}
	res, err := MergePeers([]*PeersResult{part1, part2})
	var mm *SizeMismatchError
	if errors.As(err, &mm) {
		for _, c := range mm.Cases {
			t.Logf("%s\nPostgreSQL:\n%s\nDuckDB:\n%s", c.Name, c.PGQuery, c.DuckQuery)
		}
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(res.Cases) != len(Suite) || len(res.Engines) != 3 {
		t.Fatalf("%d cases, %d engines", len(res.Cases), len(res.Engines))
	}
	nonTrivial := 0
	for _, c := range res.Cases {
		if c.CohortSize > 0 && c.CohortSize < 2000 {
			nonTrivial++
		}
		t.Logf("%-24s %5d  cohort %-10s postgres %-10s duckdb %s", c.Name, c.CohortSize, c.Cohort, c.PG, c.Duck)
	}
	if nonTrivial < len(res.Cases)*2/3 {
		t.Errorf("only %d of %d conditions split the population: the equality check proves little", nonTrivial, len(res.Cases))
	}
	for _, e := range res.Engines {
		if e.Load <= 0 || (e.Engine != "Cohort" && e.Disk <= 0) {
			t.Errorf("engine stats %+v", e)
		}
	}
}
