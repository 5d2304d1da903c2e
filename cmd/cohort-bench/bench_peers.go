package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
	"github.com/cohortdb/cohort/internal/buildinfo"
)

const benchPeersUsage = `Usage:
  cohort-bench peers [--profiles 1000000] [--events 20000000] [--runs 3] [--pg-url URL]
                     [--engines cohort,postgres,duckdb] [--save FILE]
  cohort-bench peers --merge FILE,FILE[,FILE]

Generates one data set (internal/gen) and loads the same profiles and events
into Cohort (an in-memory index, as "cohort-bench segments" does), into
PostgreSQL (pgx, COPY, a typical indexed schema) and into an embedded DuckDB
database file, translates every suite condition to SQL and runs it on the
three. The three sizes must agree: the command fails naming the condition
and the sizes otherwise. Prints per condition each engine's median time and
peer time / Cohort time, load times and memory/disk.

PostgreSQL: --pg-url, else $COHORT_PG_URL, else a private server started in
a temporary directory from the postgresql package (initdb + pg_ctl on a free
port; as root they run as user postgres) and stopped at the end. On an
existing server the tables live in a schema cohort_bench_<pid>, dropped at
the end.

One engine at a time: --engines names the engines to run and --save writes
the result as JSON; --merge reads such files (the same data set and suite,
each engine run once) and prints the table of them all, checking the sizes
across the files. The generator is deterministic, so runs made apart, even
on different days, load the same data.

Environment:
  COHORT_PG_URL   the PostgreSQL to use when --pg-url is not given
  GOMEMLIMIT      the Go runtime's heap limit

Example:
  cohort-bench peers --profiles 100000 --runs 3 --engines cohort,duckdb
`

type peersOpts struct {
	data  bench.Data
	runs  int
	batch int
	pgURL string
	dir   string
	cases string
	// indexDir: Cohort's index kept by a segments run, opened instead of
	// loaded.
	indexDir string
	// engines to run (nil: all); save: write the result here; merge:
	// saved results to combine instead of running.
	engines map[string]bool
	save    string
	merge   []string
}

func parsePeersFlags(args []string, stderr io.Writer, getenv func(string) string) (peersOpts, error) {
	var o peersOpts
	fs := flag.NewFlagSet("bench peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchPeersUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	dataFlags(fs, &o.data)
	fs.IntVar(&o.runs, "runs", 3, "timed runs per condition and engine (after one untimed run)")
	fs.IntVar(&o.batch, "batch", 20000, "rows per load batch")
	fs.StringVar(&o.pgURL, "pg-url", "", "PostgreSQL connection URL (default $COHORT_PG_URL, else a private server)")
	fs.StringVar(&o.dir, "dir", "", "directory for the DuckDB database file, created if missing (default a temporary directory, removed afterwards)")
	fs.StringVar(&o.indexDir, "index-dir", "", "Cohort's side opens the index a `cohort-bench segments --keep --index-dir DIR` run left (same data flags; persisted as the server does) instead of loading the data set into memory")
	fs.StringVar(&o.cases, "cases", "", "comma-separated suite case names to run (default: all; referenced cases must be included)")
	engines := fs.String("engines", strings.Join(bench.Engines, ","), "comma-separated engines to run: cohort, postgres, duckdb")
	fs.StringVar(&o.save, "save", "", "write the result as JSON to `FILE`, for --merge")
	merge := fs.String("merge", "", "comma-separated result `FILES` (from --save) to combine into one table, instead of running")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	o.engines = map[string]bool{}
	for _, e := range strings.Split(*engines, ",") {
		if e = strings.TrimSpace(e); !slices.Contains(bench.Engines, e) {
			errs = append(errs, fmt.Errorf("--engines: unknown engine %q (want cohort, postgres or duckdb)", e))
		}
		o.engines[e] = true
	}
	if *merge != "" {
		o.merge = strings.Split(*merge, ",")
	}
	if o.pgURL == "" {
		o.pgURL = getenv("COHORT_PG_URL")
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	errs = append(errs, checkData(&o.data)...)
	if o.runs < 1 {
		errs = append(errs, errors.New("--runs must be at least 1"))
	}
	if o.batch < 1 {
		errs = append(errs, errors.New("--batch must be at least 1"))
	}
	return o, errors.Join(errs...)
}

func benchPeers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parsePeersFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	if o.merge != nil {
		res, err := mergePeers(o.merge)
		if res != nil {
			o.data, o.runs = res.Data, res.Runs
			printPeers(stdout, o, res, bench.ThisMachine())
		}
		return err
	}
	suite, err := selectCases(o.cases)
	if err != nil {
		return err
	}
	load0 := bench.LoadAvg()
	res, err := bench.RunPeers(ctx, bench.PeersOptions{
		Data: o.data, Runs: o.runs, PGURL: o.pgURL, PGTuning: bench.BenchPGTuning,
		Dir: o.dir, Batch: o.batch, Suite: suite, Log: stderr, Engines: o.engines, IndexDir: o.indexDir,
	})
	if res != nil && res.Cases != nil {
		res.Notes = append(res.Notes, bench.RunNote{Engines: res.Ran, Machine: bench.ThisMachine().String(), Build: "cohort " + buildinfo.String(),
			LoadAvg: fmt.Sprintf("at the start %s, at the end %s", load0, bench.LoadAvg())})
		printPeers(stdout, o, res, bench.ThisMachine())
		if o.save != "" {
			if serr := savePeers(o.save, res); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}
	return err
}

func savePeers(path string, res *bench.PeersResult) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

func mergePeers(paths []string) (*bench.PeersResult, error) {
	var parts []*bench.PeersResult
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		var r bench.PeersResult
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("merge: %s: %w", p, err)
		}
		parts = append(parts, &r)
	}
	return bench.MergePeers(parts)
}

func printPeers(w io.Writer, o peersOpts, res *bench.PeersResult, m bench.Machine) {
	fmt.Fprintf(w, "cohort-bench peers --profiles %d --events %d --runs %d --seed %d --arrival %s\n", o.data.Profiles, o.data.Events, o.runs, o.data.Seed, arrivalFlag{&o.data.InOrder})
	if len(res.Notes) == 0 {
		fmt.Fprintf(w, "machine: %s\n", m)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "%s ran on %s with %s; load average (1, 5, 15 min) %s\n", strings.Join(n.Engines, ", "), n.Machine, cmp.Or(n.Build, "an unrecorded build"), n.LoadAvg)
	}
	for _, e := range res.Engines {
		fmt.Fprintf(w, "%-10s %s\n", e.Engine+":", e.Version)
	}
	if res.PGURL != "" {
		fmt.Fprintf(w, "PostgreSQL at %s\n", res.PGURL)
	}
	fmt.Fprintf(w, "evaluated at %s; median of %d timed runs after one untimed run; Cohort: segment.Evaluate without criteria, one goroutine\n\n",
		o.data.At().Format(time.RFC3339), o.runs)
	fmt.Fprintln(w, "| # | condition | size | Cohort | PostgreSQL | DuckDB | PG ÷ Cohort | DuckDB ÷ Cohort |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	var pgR, dkR []float64
	var slower []string
	hasC, hasP, hasD := res.Has(bench.EngineCohort), res.Has(bench.EnginePostgres), res.Has(bench.EngineDuckDB)
	mismatch := res.CheckSizes()
	for i, c := range res.Cases {
		size := fmt.Sprint(c.CohortSize)
		if !hasC {
			size = fmt.Sprint(max(c.PGSize, c.DuckSize))
		}
		if mismatch != nil && ((hasP && c.PGSize != c.CohortSize) || (hasD && c.DuckSize != c.CohortSize) || (hasP && hasD && c.PGSize != c.DuckSize)) {
			size = fmt.Sprintf("MISMATCH Cohort %s, PostgreSQL %s, DuckDB %s", fmtSize(hasC, c.CohortSize), fmtSize(hasP, c.PGSize), fmtSize(hasD, c.DuckSize))
		}
		pgRatio, dkRatio := "—", "—"
		if hasC && hasP {
			pgRatio = fmtRatio(c.PGRatio())
			pgR = append(pgR, c.PGRatio())
		}
		if hasC && hasD {
			dkRatio = fmtRatio(c.DuckRatio())
			dkR = append(dkR, c.DuckRatio())
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", i+1, c.Name, size,
			fmtTime(hasC, c.Cohort), fmtTime(hasP, c.PG), fmtTime(hasD, c.Duck), pgRatio, dkRatio)
		if (hasC && hasP && c.PGRatio() < 1) || (hasC && hasD && c.DuckRatio() < 1) {
			slower = append(slower, c.Name)
		}
	}
	fmt.Fprintln(w)
	if !hasC || (!hasP && !hasD) {
		fmt.Fprintf(w, "engines run: %s (no ratios without Cohort and a peer; --save and --merge combine runs)\n", strings.Join(res.Ran, ", "))
	} else {
		fmt.Fprintf(w, "median condition: PostgreSQL ÷ Cohort %s, DuckDB ÷ Cohort %s (medians of the per-condition ratios)\n", fmtRatioOf(pgR, medianF), fmtRatioOf(dkR, medianF))
		fmt.Fprintf(w, "smallest ratio:   PostgreSQL ÷ Cohort %s, DuckDB ÷ Cohort %s\n", fmtRatioOf(pgR, slices.Min), fmtRatioOf(dkR, slices.Min))
	}
	switch {
	case len(slower) > 0:
		fmt.Fprintf(w, "Cohort is slower than a peer on: %v\n", slower)
	case len(pgR) > 0 && len(dkR) > 0:
		fmt.Fprintln(w, "Cohort is faster than both peers on every condition")
	case len(pgR)+len(dkR) > 0:
		fmt.Fprintln(w, "Cohort is faster than the peer that ran on every condition")
	}
	fmt.Fprintf(w, "\ngenerating the data set alone: %s (included in every load below)\n\n", res.Generation.Round(time.Millisecond))
	fmt.Fprintln(w, "| engine | load | memory | disk | notes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	for _, e := range res.Engines {
		disk := "—"
		if e.Disk > 0 {
			disk = fmtBytes(e.Disk)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", e.Engine, e.Load.Round(100*time.Millisecond), fmtBytes(e.Memory), disk, e.Note)
	}
}

// fmtTime is a median time, or a dash for an engine that did not run.
func fmtTime(ran bool, d time.Duration) string {
	if !ran {
		return "—"
	}
	return fmtDur(d)
}

func fmtSize(ran bool, n uint64) string {
	if !ran {
		return "—"
	}
	return fmt.Sprint(n)
}

// fmtRatioOf summarises ratios with f, or a dash when there are none.
func fmtRatioOf(rs []float64, f func([]float64) float64) string {
	if len(rs) == 0 {
		return "—"
	}
	return fmtRatio(f(rs))
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatio(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
