package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
)

const benchRestartUsage = `usage: cohort-bench restart [flags]

Measures a restart after a crash, as a user sees it. The real server
(cohort serve) runs in a child process; this process sends it a generated
data set over HTTP (identifies, then track events in time order, in
batches, from several clients; events of the last 30 days by the
server's clock, within its retention). Once --kill-after of the events are
acknowledged it kills the server with SIGKILL while the clients are still
sending, starts it again on the same data directory and times how long
until GET /healthz answers 200. Then it checks that nothing acknowledged
was lost: the server holds at least the acknowledged events
(/api/schema), and every acknowledged batch sent again is ignored as a
duplicate in full (its messageIds are stored, and with them, in the same
commit, their events). Past 5M events the batches kept to send again are
a sample: every 1,000th acknowledged and the last 2,000 before the kill.
Then it reports the restarted server's memory after a full collection
(GET /debug/pprof/heap?gc=1) against an empty server's, measured the same
way.

Example:
  cohort-bench restart --profiles 100000 --events 2000000
  cohort-bench restart --profiles 10000000 --events 200000000 --clients 16 --data /tmp/cohort-10m
`

type restartOpts struct {
	data       bench.Data
	killAfter  float64
	clients    int
	batch      int
	serverBin  string
	serverProc int
	dataDir    string // kept after the run when set
	reopen     bool   // no load: start on dataDir as it is
	heapFile   string // the restarted server's heap profile
}

func parseRestartFlags(args []string, stderr io.Writer) (restartOpts, error) {
	var o restartOpts
	fs := flag.NewFlagSet("bench restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchRestartUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	dataFlags(fs, &o.data)
	fs.Float64Var(&o.killAfter, "kill-after", 0.9, "kill the server once this fraction of the events is acknowledged")
	fs.IntVar(&o.clients, "clients", 8, "concurrent HTTP clients")
	fs.IntVar(&o.batch, "batch", 100, "messages per POST /v1/batch")
	fs.StringVar(&o.serverBin, "server-bin", "", "the cohort binary (default: built from this module)")
	fs.IntVar(&o.serverProc, "server-gomaxprocs", 0, "GOMAXPROCS of the server (0: its default)")
	fs.StringVar(&o.dataDir, "data", "", "the server's data `DIR`, kept after the run (default: a temporary directory, removed); it must not exist or be empty")
	fs.BoolVar(&o.reopen, "reopen", false, "no load and no kill: start the server on the --data directory a run kept, and measure the start and the memory (to compare binaries on one data set)")
	fs.StringVar(&o.heapFile, "heap-profile", "", "write the restarted server's heap profile, after a full collection, to `FILE` (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	errs := checkData(&o.data)
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if o.reopen && o.dataDir == "" {
		errs = append(errs, errors.New("--reopen needs --data: the directory a run kept"))
	}
	if o.killAfter <= 0 || o.killAfter >= 1 {
		errs = append(errs, errors.New("--kill-after must be between 0 and 1"))
	}
	if o.clients < 1 || o.batch < 1 {
		errs = append(errs, errors.New("--clients and --batch must be at least 1"))
	}
	return o, errors.Join(errs...)
}

// restartResult is what a run measured.
type restartResult struct {
	acked, ackedEvents, sentEvents int64
	load                           time.Duration // from the first request to the kill
	toHealthy                      time.Duration // from the restart's exec
	resent                         int64         // acknowledged messages sent again
	sample                         bool          // resent is a sample of the acknowledged
	dups                           float64       // of them, ignored as duplicates
	stored                         int64         // events the restarted server holds (/api/schema)
	empty, again                   memAfterGC
	file                           uint64 // RSS of mapped files, bytes
	indexFiles, dataFiles          int64
}

func benchRestart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseRestartFlags(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cohort-bench-restart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := o.serverBin
	if bin == "" {
		bin = filepath.Join(tmp, "cohort")
		fmt.Fprintf(stderr, "bench restart: building the server...\n")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/cohortdb/cohort/cmd/cohort").CombinedOutput(); err != nil {
			return fmt.Errorf("building the server binary (run from the module's tree, or give --server-bin): %w\n%s", err, out)
		}
	}
	const wk, ak = "wk_bench_restart", "ak_bench_restart"
	var res restartResult

	// An empty server's memory, for the difference.
	empty, err := startChildIn(ctx, stderr, bin, o.serverProc, wk, ak, filepath.Join(tmp, "empty"), 30*time.Second)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Minute}
	if res.empty, err = gcAndMeasure(ctx, client, empty, ""); err != nil {
		return err
	}
	if err := empty.stop(); err != nil {
		return err
	}

	dir := filepath.Join(tmp, "data")
	if o.dataDir != "" {
		entries, err := os.ReadDir(o.dataDir)
		switch {
		case o.reopen && len(entries) == 0:
			return fmt.Errorf("--reopen --data %s: no data there (%v)", o.dataDir, err)
		case !o.reopen && len(entries) > 0:
			return fmt.Errorf("--data %s: not empty", o.dataDir)
		}
		dir = o.dataDir
	}
	acked := &ackedSet{}
	if !o.reopen {
		srv, err := startChildIn(ctx, stderr, bin, o.serverProc, wk, ak, dir, 30*time.Second)
		if err != nil {
			return err
		}
		if acked, err = loadUntilKill(ctx, o, srv, &res); err != nil {
			srv.child.kill()
			return err
		}
		fmt.Fprintf(stderr, "bench restart: killed after %d events acknowledged; starting again...\n", res.ackedEvents)
	}
	again, err := startChildIn(ctx, stderr, bin, o.serverProc, wk, ak, dir, time.Hour)
	if err != nil {
		return err
	}
	defer again.stop()
	res.toHealthy = time.Since(again.started)
	if res.again, err = gcAndMeasure(ctx, client, again, o.heapFile); err != nil {
		return err
	}
	_, res.file = childRSS(again.child)
	res.indexFiles = dirSize(filepath.Join(dir, "index"))
	res.dataFiles = dirSize(dir)

	// Nothing acknowledged lost: the server holds at least the
	// acknowledged events, and every acknowledged batch kept, sent again,
	// is all duplicates.
	if res.stored, err = schemaEvents(ctx, client, again); err != nil {
		return err
	}
	before, err := scrapeMetrics(ctx, client, again.base+"/metrics")
	if err != nil {
		return err
	}
	for _, b := range acked.batches() {
		if err := postBatch(ctx, client, again.base, wk, b.body); err != nil {
			return fmt.Errorf("sending an acknowledged batch again: %w", err)
		}
		res.resent += int64(b.msgs)
	}
	res.sample = acked.sampled
	after, err := scrapeMetrics(ctx, client, again.base+"/metrics")
	if err != nil {
		return err
	}
	const dup = `cohort_ingest_messages_total{outcome="duplicate"}`
	res.dups = after[dup] - before[dup]
	printRestart(stdout, o, &res)
	if int64(res.dups) != res.resent {
		return fmt.Errorf("%d acknowledged messages were sent again, but only %.0f of them are stored", res.resent, res.dups)
	}
	if res.stored < res.ackedEvents {
		return fmt.Errorf("%d events were acknowledged before the kill, but the server holds %d", res.ackedEvents, res.stored)
	}
	return nil
}

// childRSS reads the child's resident anonymous and file-backed memory.
func childRSS(c *childServer) (anon, file uint64) {
	path := fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid)
	return bench.ProcKB(path, "RssAnon") << 10, bench.ProcKB(path, "RssFile") << 10
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func printRestart(w io.Writer, o restartOpts, r *restartResult) {
	fmt.Fprintf(w, "cohort-bench restart --profiles %d --events %d --kill-after %g --clients %d --batch %d --seed %d",
		o.data.Profiles, o.data.Events, o.killAfter, o.clients, o.batch, o.data.Seed)
	if o.dataDir != "" {
		fmt.Fprintf(w, " --data %s", o.dataDir)
	}
	if o.reopen {
		fmt.Fprint(w, " --reopen")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "machine: %s\n", bench.ThisMachine())
	if o.reopen {
		fmt.Fprintf(w, "reopened %s (no load, no kill): /healthz 200 after %s\n", o.dataDir, r.toHealthy.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "load over HTTP until the kill: %d messages (%d events) acknowledged in %s, %.0f events/s\n",
			r.acked, r.ackedEvents, r.load.Round(time.Millisecond), float64(r.ackedEvents)/r.load.Seconds())
		fmt.Fprintf(w, "SIGKILL, then start: /healthz 200 after %s\n", r.toHealthy.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "events held after the restart: %d (/api/schema); %d acknowledged, %d sent\n", r.stored, r.ackedEvents, r.sentEvents)
	which := "all of them"
	if r.sample {
		which = fmt.Sprintf("a sample of the %d acknowledged: every %dth batch and the last %d", r.acked, sampleEvery, sampleTail)
	}
	fmt.Fprintf(w, "acknowledged messages sent again: %.0f of %d ignored as duplicates (stored; %s)\n", r.dups, r.resent, which)
	perProfile := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(o.data.Profiles) }
	fmt.Fprintf(w, "memory after a full collection, restarted server against an empty one:\n")
	fmt.Fprintf(w, "  RSS anonymous   %8.1f MB  (empty %.1f MB)  %.0f B per profile over it\n",
		float64(r.again.anon)/1e6, float64(r.empty.anon)/1e6, perProfile(r.again.anon, r.empty.anon))
	fmt.Fprintf(w, "  Go heap in use  %8.1f MB  (empty %.1f MB)  %.0f B per profile\n",
		float64(r.again.heapInuse)/1e6, float64(r.empty.heapInuse)/1e6, perProfile(r.again.heapInuse, r.empty.heapInuse))
	fmt.Fprintf(w, "  Go heap idle, not returned to the OS  %.1f MB; runtime off-heap (stacks, GC metadata, spans) %.1f MB\n",
		float64(r.again.heapIdleKept)/1e6, float64(r.again.runtimeOther)/1e6)
	fmt.Fprintf(w, "  mapped files (page cache) %.1f MB; index files %.1f MB; data directory %.1f MB\n",
		float64(r.file)/1e6, float64(r.indexFiles)/1e6, float64(r.dataFiles)/1e6)
	if o.heapFile != "" {
		fmt.Fprintf(w, "  heap profile of the restarted server: %s (go tool pprof -sample_index=inuse_space -top %s)\n", o.heapFile, o.heapFile)
	}
}
