package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
	"github.com/cohortdb/cohort/internal/index"
)

const benchSegmentsUsage = `Usage:
  cohort-bench segments [--profiles 1000000] [--events 20000000] [--runs 7] [--cpuprofile FILE]

Generates a data set (internal/gen), loads it straight into an in-memory
index (index.Apply of the generated messages, no HTTP or store), then
evaluates every condition of the benchmark suite with per-leaf criteria
counts: once as a "build", then --runs times. Prints per condition the
size, median and max; the median of the medians, the worst run, the build
of every suite segment, index bytes per profile, load time and the machine.

Environment:
  GOMEMLIMIT   the Go runtime's heap limit (set it for 10M profiles)

Example:
  cohort-bench segments --profiles 20000 --runs 3
`

type segmentsOpts struct {
	data        bench.Data
	runs, batch int
	cpuprofile  string
	loadProfile string
	memprofile  string
	loadMem     string
	onlyCases   string
	maxHeapGiB  float64
	indexDir    string
	// checkpointEvents: persist while loading (IndexStore.Every).
	checkpointEvents int
	noPartMerge      bool
	// keep leaves the index and its journal for a later run with reopen,
	// which skips the load (to compare query code on one loaded index).
	keep, reopen bool
}

func parseSegmentsFlags(args []string, stderr io.Writer) (segmentsOpts, error) {
	var o segmentsOpts
	fs := flag.NewFlagSet("bench segments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchSegmentsUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	dataFlags(fs, &o.data)
	fs.IntVar(&o.runs, "runs", 7, "timed evaluations per condition (after the build)")
	fs.IntVar(&o.batch, "batch", 10000, "messages per index.Apply while loading")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the evaluations to `FILE`")
	fs.StringVar(&o.loadProfile, "load-cpuprofile", "", "write a CPU profile of the load to `FILE`")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile after the load (with --reopen, after the open) to `FILE`")
	fs.StringVar(&o.loadMem, "load-memprofile", "", "write a heap profile at the end of the load, before --index-dir's checkpoint and reopening (a background merge may still run), to `FILE`")
	fs.Float64Var(&o.maxHeapGiB, "max-heap-gib", 0, "stop the load with an error when the Go heap exceeds this many GiB (0: no limit)")
	fs.StringVar(&o.indexDir, "index-dir", "", "checkpoint the loaded index into `DIR` (part files and a checkpoint), open it again from there as a restart does, and run the suite on the reopened index (its event columns mapped from the files)")
	fs.IntVar(&o.checkpointEvents, "checkpoint-events", 0, "with --index-dir, persist the index while loading as the server does with index.checkpoint_events: `N` (a checkpoint every N events, parts merged in the background); 0: one checkpoint after the load")
	fs.BoolVar(&o.noPartMerge, "no-part-merge", false, "with --checkpoint-events, merge no parts (to measure what merging them buys)")
	fs.BoolVar(&o.keep, "keep", false, "with --index-dir, leave the index and its journal (DIR.journal) on disk for a later --reopen")
	fs.BoolVar(&o.reopen, "reopen", false, "skip the load: open the index a --keep run left in --index-dir (pass the same data flags) and run the suite on it")
	fs.StringVar(&o.onlyCases, "cases", "", "comma-separated suite case names to run (default: all; referenced cases must be included)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
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
	if o.checkpointEvents < 0 || (o.checkpointEvents > 0 && o.indexDir == "") {
		errs = append(errs, errors.New("--checkpoint-events needs --index-dir and must not be negative"))
	}
	if (o.keep || o.reopen) && o.indexDir == "" {
		errs = append(errs, errors.New("--keep and --reopen need --index-dir"))
	}
	return o, errors.Join(errs...)
}

// selectCases returns the suite, or the named cases of it.
func selectCases(only string) ([]bench.Parsed, error) {
	cases := bench.Suite
	if only != "" {
		want := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			want[strings.TrimSpace(n)] = true
		}
		cases = nil
		for _, c := range bench.Suite {
			if want[c.Name] {
				cases = append(cases, c)
				delete(want, c.Name)
			}
		}
		if len(want) > 0 {
			return nil, fmt.Errorf("--cases: unknown case(s) %v", want)
		}
	}
	return bench.ParseSuite(cases)
}

func benchSegments(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSegmentsFlags(args, stderr)
	if err != nil {
		return err
	}
	suite, err := selectCases(o.onlyCases)
	if err != nil {
		return err
	}
	if o.reopen {
		return reopenSegments(ctx, o, suite, stdout, stderr)
	}
	fmt.Fprintf(stderr, "bench segments: loading %d profiles / %d events...\n", o.data.Profiles, o.data.Events)
	stopLoad, err := startCPUProfile(o.loadProfile)
	if err != nil {
		return err
	}
	var store *bench.IndexStore
	if o.indexDir != "" {
		if store, err = bench.OpenIndexStore(o.indexDir, o.checkpointEvents); err != nil {
			return err
		}
		store.NoPartMerge, store.Keep = o.noPartMerge, o.keep
		defer store.Close()
	}
	t0 := time.Now()
	ix, ls, err := bench.LoadCohort(ctx, o.data, bench.LoadOptions{
		Batch: o.batch, MaxHeap: uint64(o.maxHeapGiB * (1 << 30)), Store: store,
		Progress: func(events int, heap uint64) {
			fmt.Fprintf(stderr, "bench segments: %d events loaded in %s, heap %.2f GiB\n", events, time.Since(t0).Round(time.Second), float64(heap)/(1<<30))
		},
	})
	if err := stopLoad(); err != nil {
		fmt.Fprintf(stderr, "bench segments: %v\n", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench segments: loaded in %s (index.Apply %s), index %.0f B/profile\n",
		ls.Wall.Round(time.Millisecond), ls.Apply.Round(time.Millisecond), ls.BytesPerProfile())
	if o.loadMem != "" {
		if err := writeHeapProfile(o.loadMem); err != nil {
			return err
		}
	}
	var ps *bench.PersistStats
	if o.indexDir != "" {
		if store.Every > 0 {
			fmt.Fprintf(stderr, "bench segments: %d checkpoints while loading, %s on the loading goroutine, %d merged parts\n", store.Checkpoints, store.Held.Round(time.Millisecond), store.PartMerges)
		}
		re, st, err := bench.PersistAndReopen(ctx, ix, store)
		if err != nil {
			return err
		}
		defer re.Close()
		ix, ps = re, &st
		fmt.Fprintf(stderr, "bench segments: checkpoint %s, open %s, heap with the reopened index %.0f B/profile\n",
			st.Checkpoint.Round(time.Millisecond), st.Open.Round(time.Millisecond), perProfile(st.HeapAfter, ls))
	}
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			return err
		}
	}
	if err := runSuite(ctx, o, suite, ix, ls, stdout, stderr); err != nil {
		return err
	}
	if ps != nil {
		printPersist(stdout, ls, ps)
	}
	return nil
}

// reopenSegments runs the suite on the index a --keep run left.
func reopenSegments(ctx context.Context, o segmentsOpts, suite []bench.Parsed, stdout, stderr io.Writer) error {
	store, err := bench.ReopenIndexStore(o.indexDir)
	if err != nil {
		return err
	}
	defer store.Close()
	t := time.Now()
	ix, err := store.Open(ctx)
	if err != nil {
		return err
	}
	defer ix.Close()
	fmt.Fprintf(stderr, "bench segments: reopened %s in %s\n", o.indexDir, time.Since(t).Round(time.Millisecond))
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			return err
		}
	}
	ls := bench.LoadStats{Profiles: o.data.Profiles, Events: o.data.Events}
	return runSuite(ctx, o, suite, ix, ls, stdout, stderr)
}

// runSuite times the suite on ix and prints the report.
func runSuite(ctx context.Context, o segmentsOpts, suite []bench.Parsed, ix *index.Index, ls bench.LoadStats, stdout, stderr io.Writer) error {
	stop, err := startCPUProfile(o.cpuprofile)
	if err != nil {
		return err
	}
	load0 := bench.LoadAvg()
	res, _, err := bench.RunSegments(ctx, ix, suite, o.data.At(), o.runs, func(c bench.CaseTiming) {
		fmt.Fprintf(stderr, "bench segments: %-24s %10d members, median %s\n", c.Name, c.Size, fmtDur(c.Median))
	})
	if err := stop(); err != nil {
		fmt.Fprintf(stderr, "bench segments: %v\n", err)
	}
	if err != nil {
		return err
	}
	printSegments(stdout, o, suite, ls, res, bench.ThisMachine())
	pb, hits, made := ix.PartialStats()
	fmt.Fprintf(stdout, "partial aggregates of parts kept after the suite: %.1f MB (%d made, %d used; index.partial_cache_bytes)\n", float64(pb)/1e6, made, hits)
	fmt.Fprintf(stdout, "load average (1, 5, 15 min) before the evaluations: %s, after: %s\n", load0, bench.LoadAvg())
	return nil
}

func printSegments(w io.Writer, o segmentsOpts, suite []bench.Parsed, ls bench.LoadStats, res *bench.SegmentsResult, m bench.Machine) {
	fmt.Fprintf(w, "cohort-bench segments --profiles %d --events %d --runs %d --seed %d --arrival %s\n", o.data.Profiles, o.data.Events, o.runs, o.data.Seed, arrivalFlag{&o.data.InOrder})
	fmt.Fprintf(w, "machine: %s\n", m)
	fmt.Fprintf(w, "evaluated at %s; every evaluation with per-leaf criteria counts, one goroutine\n\n", o.data.At().Format(time.RFC3339))
	fmt.Fprintln(w, "| # | condition | leaves | size | build | median | max | CPU median |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for i, c := range res.Cases {
		fmt.Fprintf(w, "| %d | %s | %d | %d | %s | %s | %s | %s |\n", i+1, c.Name, c.Leaves, c.Size, fmtDur(c.Build), fmtDur(c.Median), fmtDur(c.Max), fmtDur(c.CPUMedian))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "conditions:               %d\n", len(res.Cases))
	fmt.Fprintf(w, "median of medians:        %s\n", fmtDur(res.MedianOfMedians))
	fmt.Fprintf(w, "worst (max of all runs):  %s\n", fmtDur(res.Worst))
	fmt.Fprintf(w, "in CPU time of the evaluating thread: median of medians %s, worst %s\n", fmtDur(res.CPUMedianOfMedians), fmtDur(res.CPUWorst))
	fmt.Fprintf(w, "build, every suite segment one after another: %s (slowest single: %s)\n", fmtDur(res.BuildAll), fmtDur(res.BuildMax))
	fmt.Fprintf(w, "index memory:             %.1f B/profile (%.1f MB HeapInuse over %d profiles, %d events)\n",
		ls.BytesPerProfile(), float64(ls.IndexBytes())/1e6, ls.Profiles, ls.Events)
	fmt.Fprintf(w, "load:                     %s (index.Apply %s; the rest is generation), %.0f events/s\n",
		ls.Wall.Round(time.Millisecond), ls.Apply.Round(time.Millisecond), float64(ls.Events)/ls.Wall.Seconds())
}

// fmtDur prints a duration with three significant digits in ms.
func fmtDur(d time.Duration) string {
	ms := float64(d) / 1e6
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.3f ms", ms)
}

// startCPUProfile starts a CPU profile to path (nothing when path is
// empty); stop ends it.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC() // the profile's in-use figures are the last collection's
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// perProfile is the heap over the one before the load, per profile.
func perProfile(heap uint64, ls bench.LoadStats) float64 {
	if heap < ls.HeapBefore || ls.Profiles == 0 {
		return 0
	}
	return float64(heap-ls.HeapBefore) / float64(ls.Profiles)
}

func printPersist(w io.Writer, ls bench.LoadStats, ps *bench.PersistStats) {
	fmt.Fprintf(w, "persisted (--index-dir): checkpoint %s (a second one, no new event: %s; a merge of the base in the background: %s), files %.1f MB (%d parts); index.Open from them %s\n",
		ps.Checkpoint.Round(time.Millisecond), ps.MetaOnly.Round(time.Millisecond), ps.Merge.Round(time.Millisecond), float64(ps.FileBytes)/1e6, ps.PartFiles, ps.Open.Round(time.Millisecond))
	fmt.Fprintf(w, "index memory, reopened:   %.1f B/profile of Go heap (%.1f MB HeapInuse over the empty heap)\n",
		perProfile(ps.HeapAfter, ls), perProfile(ps.HeapAfter, ls)*float64(ls.Profiles)/1e6)
	fmt.Fprintf(w, "process RSS after the open: %.1f MB anonymous, %.1f MB of mapped files (the page cache of the parts)\n",
		float64(ps.RSSAnon)/1e6, float64(ps.RSSFile)/1e6)
}
