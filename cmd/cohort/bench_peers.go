package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
)

const benchPeersUsage = `Usage:
  cohort bench peers [--profiles 1000000] [--events 20000000] [--runs 3] [--pg-url URL]

Generates one data set (internal/gen) and loads the same profiles and events
into Cohort (an in-memory index, as "cohort bench segments" does), into
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
`

type peersOpts struct {
	data  bench.Data
	runs  int
	batch int
	pgURL string
	dir   string
	cases string
}

func parsePeersFlags(args []string, stderr io.Writer, getenv func(string) string) (peersOpts, error) {
	var o peersOpts
	o.data.InOrder = true
	fs := flag.NewFlagSet("bench peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchPeersUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.data.Profiles, "profiles", 1_000_000, "profiles to generate")
	fs.IntVar(&o.data.Events, "events", 20_000_000, "events to generate")
	fs.Uint64Var(&o.data.Seed, "seed", 1, "generator seed")
	fs.Var(arrivalFlag{&o.data.InOrder}, "arrival", "event arrival order: `ordered` (timestamp order, up to an hour late, as a live stream) or random (uniform over the period, random order)")
	fs.IntVar(&o.runs, "runs", 3, "timed runs per condition and engine (after one untimed run)")
	fs.IntVar(&o.batch, "batch", 20000, "rows per load batch")
	fs.StringVar(&o.pgURL, "pg-url", "", "PostgreSQL connection URL (default $COHORT_PG_URL, else a private server)")
	fs.StringVar(&o.dir, "dir", "", "directory for the DuckDB database file (default a temporary directory, removed afterwards)")
	fs.StringVar(&o.cases, "cases", "", "comma-separated suite case names to run (default: all; referenced cases must be included)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.pgURL == "" {
		o.pgURL = getenv("COHORT_PG_URL")
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if o.data.Profiles < 1 {
		errs = append(errs, errors.New("--profiles must be at least 1"))
	}
	if o.data.Events < 0 {
		errs = append(errs, errors.New("--events must not be negative"))
	}
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
	suite, err := selectCases(o.cases)
	if err != nil {
		return err
	}
	load0 := bench.LoadAvg()
	res, err := bench.RunPeers(ctx, bench.PeersOptions{
		Data: o.data, Runs: o.runs, PGURL: o.pgURL, PGTuning: bench.BenchPGTuning,
		Dir: o.dir, Batch: o.batch, Suite: suite, Log: stderr,
	})
	if res != nil && res.Cases != nil {
		printPeers(stdout, o, res, bench.ThisMachine())
		fmt.Fprintf(stdout, "load average (1, 5, 15 min) at the start: %s, at the end: %s\n", load0, bench.LoadAvg())
	}
	return err
}

func printPeers(w io.Writer, o peersOpts, res *bench.PeersResult, m bench.Machine) {
	fmt.Fprintf(w, "cohort bench peers --profiles %d --events %d --runs %d --seed %d --arrival %s\n", o.data.Profiles, o.data.Events, o.runs, o.data.Seed, arrivalFlag{&o.data.InOrder})
	fmt.Fprintf(w, "machine: %s\n", m)
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
	for i, c := range res.Cases {
		size := fmt.Sprint(c.CohortSize)
		if c.PGSize != c.CohortSize || c.DuckSize != c.CohortSize {
			size = fmt.Sprintf("MISMATCH Cohort %d, PostgreSQL %d, DuckDB %d", c.CohortSize, c.PGSize, c.DuckSize)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", i+1, c.Name, size,
			fmtDur(c.Cohort), fmtDur(c.PG), fmtDur(c.Duck), fmtRatio(c.PGRatio()), fmtRatio(c.DuckRatio()))
		pgR = append(pgR, c.PGRatio())
		dkR = append(dkR, c.DuckRatio())
		if c.PGRatio() < 1 || c.DuckRatio() < 1 {
			slower = append(slower, c.Name)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "median condition: PostgreSQL ÷ Cohort %s, DuckDB ÷ Cohort %s (medians of the per-condition ratios)\n", fmtRatio(medianF(pgR)), fmtRatio(medianF(dkR)))
	fmt.Fprintf(w, "smallest ratio:   PostgreSQL ÷ Cohort %s, DuckDB ÷ Cohort %s\n", fmtRatio(slices.Min(pgR)), fmtRatio(slices.Min(dkR)))
	if len(slower) > 0 {
		fmt.Fprintf(w, "Cohort is slower than a peer on: %v\n", slower)
	} else {
		fmt.Fprintln(w, "Cohort is faster than both peers on every condition")
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
