package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
)

const benchRestartUsage = `usage: cohort-bench restart [flags]

Measures a restart after a crash, as a user sees it. The real server
(cohort serve) runs in a child process; this process sends it a generated
data set over HTTP (identifies, then track events in time order, in
batches, from several clients). Once --kill-after of the events are
acknowledged it kills the server with SIGKILL while the clients are still
sending, starts it again on the same data directory and times how long
until GET /healthz answers 200. Then it checks that nothing acknowledged
was lost (every acknowledged batch sent again is ignored as a duplicate
in full: its messageIds are stored, and with them, in the same commit,
their events), and reports the restarted server's memory against an empty
server's.

Example:
  cohort-bench restart --profiles 100000 --events 2000000
`

type restartOpts struct {
	data       bench.Data
	killAfter  float64
	clients    int
	batch      int
	serverBin  string
	serverProc int
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
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	errs := checkData(&o.data)
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
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
	sent, acked, ackedEvents int64
	load                     time.Duration // from the first request to the kill
	toPort, toHealthy        time.Duration // from the restart's exec
	dups                     float64       // acknowledged messages ignored when sent again
	emptyAnon, anon, file    uint64        // RSS, bytes
	indexFiles               int64
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
	res.emptyAnon, _ = childRSS(empty.child)
	if err := empty.stop(); err != nil {
		return err
	}

	dir := filepath.Join(tmp, "data")
	srv, err := startChildIn(ctx, stderr, bin, o.serverProc, wk, ak, dir, 30*time.Second)
	if err != nil {
		return err
	}
	acked, err := loadUntilKill(ctx, stderr, o, srv, &res)
	if err != nil {
		srv.child.kill()
		return err
	}

	fmt.Fprintf(stderr, "bench restart: killed after %d events acknowledged; starting again...\n", res.ackedEvents)
	again, err := startChildIn(ctx, stderr, bin, o.serverProc, wk, ak, dir, time.Hour)
	if err != nil {
		return err
	}
	defer again.stop()
	res.toHealthy = time.Since(again.started)
	res.anon, res.file = childRSS(again.child)
	res.indexFiles = dirSize(filepath.Join(dir, "index"))

	// Nothing acknowledged lost: every acknowledged batch again is all
	// duplicates.
	client := &http.Client{Timeout: time.Minute}
	before, err := scrapeMetrics(ctx, client, again.base+"/metrics")
	if err != nil {
		return err
	}
	for _, body := range acked {
		if err := postBatch(ctx, client, again.base, wk, body); err != nil {
			return fmt.Errorf("sending an acknowledged batch again: %w", err)
		}
	}
	after, err := scrapeMetrics(ctx, client, again.base+"/metrics")
	if err != nil {
		return err
	}
	const dup = `cohort_ingest_messages_total{outcome="duplicate"}`
	res.dups = after[dup] - before[dup]
	printRestart(stdout, o, &res)
	if int64(res.dups) != res.acked {
		return fmt.Errorf("%d messages were acknowledged before the kill, but only %.0f of them are stored", res.acked, res.dups)
	}
	return nil
}

// loadUntilKill sends the data set until killAfter of its events are
// acknowledged, then kills the server; it returns the acknowledged
// request bodies.
func loadUntilKill(ctx context.Context, stderr io.Writer, o restartOpts, srv *target, res *restartResult) ([][]byte, error) {
	type batch struct {
		body   []byte
		msgs   int
		events int
	}
	work := make(chan batch, 4*o.clients)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		acked   [][]byte
		msgs    atomic.Int64
		events  atomic.Int64
		killed  atomic.Bool
		killAt  = int64(o.killAfter * float64(o.data.Events))
		wg      sync.WaitGroup
		genErr  error
		start   = time.Now()
		onceErr error
	)
	go func() {
		defer close(work)
		genErr = generateBatches(ctx, o, func(body []byte, n, ev int) bool {
			select {
			case work <- batch{body, n, ev}:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	client := &http.Client{Timeout: time.Minute}
	for range o.clients {
		wg.Go(func() {
			for b := range work {
				if killed.Load() {
					continue
				}
				if err := postBatch(ctx, client, srv.base, srv.writeKey, b.body); err != nil {
					if !killed.Load() {
						mu.Lock()
						onceErr = errors.Join(onceErr, err)
						mu.Unlock()
						cancel()
					}
					continue
				}
				if killed.Load() {
					continue // answered after the kill was decided: not counted
				}
				mu.Lock()
				acked = append(acked, b.body)
				mu.Unlock()
				msgs.Add(int64(b.msgs))
				if events.Add(int64(b.events)) >= killAt && killed.CompareAndSwap(false, true) {
					res.load = time.Since(start)
					srv.child.kill() // requests in flight fail: never acknowledged
				}
			}
		})
	}
	wg.Wait()
	if onceErr != nil {
		return nil, onceErr
	}
	if genErr != nil && !killed.Load() {
		return nil, genErr
	}
	if !killed.Load() {
		return nil, errors.New("the data set ran out before the kill: raise --events or lower --kill-after")
	}
	res.acked, res.ackedEvents = msgs.Load(), events.Load()
	return acked, nil
}

// generateBatches encodes the data set as POST /v1/batch bodies of
// o.batch messages (identifies, then events in generation order) and
// hands each to emit with its message and event counts; emit false stops.
func generateBatches(ctx context.Context, o restartOpts, emit func(body []byte, msgs, events int) bool) error {
	g := gen.New(gen.Config{Seed: o.data.Seed, Profiles: o.data.Profiles, Events: o.data.Events,
		Now: o.data.At(), Days: 30, InOrder: o.data.InOrder})
	var buf []json.RawMessage
	events := 0
	flush := func() bool {
		if len(buf) == 0 {
			return true
		}
		body, _ := json.Marshal(map[string]any{"batch": buf})
		ok := emit(body, len(buf), events)
		buf, events = buf[:0], 0
		return ok
	}
	add := func(m *model.Message) bool {
		b, err := json.Marshal(wireMessage(m))
		if err != nil {
			return false
		}
		buf = append(buf, b)
		if m.Type == model.Track {
			events++
		}
		return len(buf) < o.batch || flush()
	}
	for _, m := range g.Identifies() {
		if !add(m) {
			return ctx.Err()
		}
	}
	for m := g.Next(); m != nil; m = g.Next() {
		if !add(m) {
			return ctx.Err()
		}
	}
	flush()
	return nil
}

// wireMessage is m as an SDK sends it.
func wireMessage(m *model.Message) map[string]any {
	w := map[string]any{"type": string(m.Type), "messageId": m.MessageID}
	for k, v := range map[string]string{"userId": m.UserID, "anonymousId": m.AnonymousID, "previousId": m.PreviousID, "event": m.Event} {
		if v != "" {
			w[k] = v
		}
	}
	if len(m.Traits) > 0 {
		w["traits"] = m.Traits
	}
	if len(m.Properties) > 0 {
		w["properties"] = m.Properties
	}
	if !m.Timestamp.IsZero() {
		w["timestamp"] = m.Timestamp.UTC().Format(time.RFC3339)
	}
	return w
}

func postBatch(ctx context.Context, client *http.Client, base, writeKey string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"success":true`)) {
		return fmt.Errorf("POST /v1/batch: %s %.300s", resp.Status, answer)
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
	fmt.Fprintf(w, "cohort-bench restart --profiles %d --events %d --kill-after %g --clients %d --batch %d --seed %d\n",
		o.data.Profiles, o.data.Events, o.killAfter, o.clients, o.batch, o.data.Seed)
	fmt.Fprintf(w, "machine: %s\n", bench.ThisMachine())
	fmt.Fprintf(w, "load over HTTP until the kill: %d messages (%d events) acknowledged in %s, %.0f events/s\n",
		r.acked, r.ackedEvents, r.load.Round(time.Millisecond), float64(r.ackedEvents)/r.load.Seconds())
	fmt.Fprintf(w, "SIGKILL, then start: /healthz 200 after %s\n", r.toHealthy.Round(time.Millisecond))
	fmt.Fprintf(w, "acknowledged messages sent again: %.0f of %d ignored as duplicates (stored)\n", r.dups, r.acked)
	fmt.Fprintf(w, "restarted server RSS: %.1f MB anonymous (empty server: %.1f MB; %.0f B per profile over it), %.1f MB of mapped files; index files %.1f MB\n",
		float64(r.anon)/1e6, float64(r.emptyAnon)/1e6, float64(int64(r.anon)-int64(r.emptyAnon))/float64(o.data.Profiles), float64(r.file)/1e6, float64(r.indexFiles)/1e6)
}
