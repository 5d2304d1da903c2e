package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
)

const benchIngestUsage = `Usage:
  cohort-bench ingest [flags]

Measures HTTP ingestion: POST /v1/batch of pre-generated track events, with
the server's durable commits. Without --url it builds this module's
cohort binary (or takes --server-bin) and starts it as a child process on a
loopback port with a temporary data directory (default configuration,
removed afterwards): the load generator and the server are two processes,
as a user's clients and server are. It fails if any request is not
answered 200 {"success": true}, or if the server stored a different number
of events than it acknowledged (checked through /metrics and /api/schema).

With --query-loop the run has two windows: the load alone, then the same
load while one more client runs a slow POST /api/query (about --query-time
each, its size adjusted as the data grows) back to back; the report says
how far the query moved ingest latency.

Environment:
  GOMEMLIMIT, GOMAXPROCS   the Go runtime's, for this process (the load
                           generator, and the server with --in-process);
                           --server-gomaxprocs sets the child server's

Example:
  cohort-bench ingest --duration 15s --warmup 2s
  cohort-bench ingest --rate 50000 --server-gomaxprocs 1
  cohort-bench ingest --query-loop          # p99 at 50,000 events/s, alone and beside a 1 s query
  cohort-bench ingest --rate 50000 --duration 20s --url http://127.0.0.1:8080 --write-key KEY
`

// ingestOpts are the flags of `cohort-bench ingest`.
type ingestOpts struct {
	url, writeKey     string
	apiKey            string
	serverBin         string
	serverProcs       int
	inProcess         bool
	duration, warmup  time.Duration
	batch, eventBytes int
	concurrency       int
	rate              float64
	users             int
	seed              uint64
	timeout           time.Duration
	cpuprofile        string
	serverProfile     string
	trace             string
	queryLoop         bool
	queryTime         time.Duration
}

func parseIngestFlags(args []string, stderr io.Writer) (ingestOpts, error) {
	var o ingestOpts
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchIngestUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "", "base URL of a running server (e.g. http://127.0.0.1:8080); default: a child `cohort serve` on 127.0.0.1")
	fs.StringVar(&o.writeKey, "write-key", "", "write key of the workspace to send to (required with --url)")
	fs.StringVar(&o.apiKey, "api-key", "", "api key of the workspace (with --url and --query-loop)")
	fs.StringVar(&o.serverBin, "server-bin", "", "the cohort binary to start as the child server; default: go build this module's cmd/cohort into a temporary directory")
	fs.IntVar(&o.serverProcs, "server-gomaxprocs", 0, "GOMAXPROCS of the child server; 0: its default (the machine's CPUs)")
	fs.BoolVar(&o.inProcess, "in-process", false, "run the server inside this process instead of a child (one --cpuprofile holds both; not the measurement of record)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before the measurement, not counted")
	fs.IntVar(&o.batch, "batch", 100, "messages per request")
	fs.IntVar(&o.eventBytes, "event-bytes", 400, "approximate JSON size of one message")
	fs.IntVar(&o.concurrency, "concurrency", 32, "client goroutines (each has at most one request in flight)")
	fs.Float64Var(&o.rate, "rate", 0, "events/s on a fixed open-loop schedule; 0: as fast as possible")
	fs.IntVar(&o.users, "users", 100000, "userId pool size (Zipf-skewed)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated content")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&o.serverProfile, "server-cpuprofile", "", "write a CPU profile of the child server over the measured window to `FILE` (its GET /debug/pprof/profile, with the admin key it was started with)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured window to `FILE` (this process: the load generator, and the server with --in-process)")
	fs.StringVar(&o.trace, "trace", "", "write a runtime execution trace of the measured window to `FILE` (go tool trace; -pprof=sync|syscall shows where goroutines wait)")
	fs.BoolVar(&o.queryLoop, "query-loop", false, "measure two windows: the load alone, then with a slow POST /api/query run in a loop (--rate defaults to 50000)")
	fs.DurationVar(&o.queryTime, "query-time", time.Second, "with --query-loop: how long each query should take (its number of leaves follows)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	rateSet := false
	fs.Visit(func(f *flag.Flag) { rateSet = rateSet || f.Name == "rate" })
	if o.queryLoop && !rateSet {
		o.rate = 50000
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if fs.NArg() > 0 {
		bad("unexpected arguments %q", fs.Args())
	}
	if o.url != "" && o.writeKey == "" {
		bad("--write-key is required with --url")
	}
	if o.url == "" && o.writeKey != "" {
		bad("--write-key needs --url (the server started here gets its own key)")
	}
	if o.url != "" && (o.inProcess || o.serverBin != "" || o.serverProcs != 0) {
		bad("--url measures a server started elsewhere: --in-process, --server-bin and --server-gomaxprocs do not apply")
	}
	if o.inProcess && (o.serverBin != "" || o.serverProcs != 0) {
		bad("--server-bin and --server-gomaxprocs are for the child server, not --in-process (set GOMAXPROCS instead)")
	}
	if o.queryLoop && o.url != "" && o.apiKey == "" {
		bad("--query-loop with --url needs --api-key")
	}
	if o.apiKey != "" && o.url == "" {
		bad("--api-key needs --url (the server started here gets its own key)")
	}
	if o.queryTime <= 0 {
		bad("--query-time must be positive")
	}
	if o.serverProcs < 0 {
		bad("--server-gomaxprocs must not be negative")
	}
	if o.duration <= 0 {
		bad("--duration must be positive")
	}
	if o.warmup < 0 {
		bad("--warmup must not be negative")
	}
	if o.batch < 1 {
		bad("--batch must be at least 1")
	}
	if o.eventBytes < 1 {
		bad("--event-bytes must be positive")
	}
	if o.concurrency < 1 {
		bad("--concurrency must be at least 1")
	}
	if o.rate < 0 {
		bad("--rate must not be negative")
	}
	if o.rate > 0 && time.Duration(float64(time.Second)*float64(o.batch)/o.rate) <= 0 {
		bad("--rate %g is too high for batches of %d", o.rate, o.batch)
	}
	if o.users < 2 {
		bad("--users must be at least 2")
	}
	if o.timeout <= 0 {
		bad("--timeout must be positive")
	}
	return o, errors.Join(errs...)
}

func benchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseIngestFlags(args, stderr)
	if err != nil {
		return err
	}
	runID := newRunID()
	w, err := newWorkload(workloadSpec{Batch: o.batch, EventBytes: o.eventBytes, Users: o.users, Seed: o.seed, RunID: runID, Now: time.Now()})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: generated %d request bodies (%.1f MB) in %s\n",
		len(w.templates), w.meanBody*float64(len(w.templates))/1e6, w.generation.Round(time.Millisecond))

	loadavg := loadAverage()
	t, err := openTarget(ctx, o, stderr, runID)
	if err != nil {
		return err
	}
	defer func() {
		if serr := t.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the server: %w", serr))
		}
	}()

	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.concurrency + 8,
		MaxIdleConnsPerHost: o.concurrency + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.timeout}
	if err := waitHealthy(ctx, client, t.base+"/healthz", 30*time.Second); err != nil {
		return err
	}

	rep := &benchReport{opts: o, t: t, w: w, loadavg: loadavg}
	var seq atomic.Uint64
	spec := phaseSpec{o: o, t: t, client: client, w: w, seq: &seq, stderr: stderr}
	if o.queryLoop {
		spec.name = "the load alone"
	}
	ph, err := runPhase(ctx, spec)
	if err != nil {
		return err
	}
	rep.phases = append(rep.phases, ph)
	if o.queryLoop {
		ph, err := queryPhase(ctx, spec)
		if err != nil {
			return err
		}
		rep.phases = append(rep.phases, ph)
	}
	if t.fresh {
		rep.stored = checkStored(ctx, client, t, rep.acked())
	}
	if t.warnings != nil {
		rep.warnings = t.warnings()
	}
	rep.print(stdout)
	return rep.verdict()
}

// openTarget starts (or, with --url, names) the server of a run.
func openTarget(ctx context.Context, o ingestOpts, stderr io.Writer, runID string) (*target, error) {
	switch {
	case o.url != "":
		base := strings.TrimSuffix(strings.TrimSuffix(o.url, "/v1/batch"), "/")
		return &target{base: base, writeKey: o.writeKey, apiKey: o.apiKey, kind: targetExternal,
			desc: base + " (its own configuration)", stop: func() error { return nil }}, nil
	case o.inProcess:
		return startInProc(stderr, "wk_bench_"+runID, "ak_bench_"+runID)
	}
	return startChild(ctx, stderr, o.serverBin, o.serverProcs, "wk_bench_"+runID, "ak_bench_"+runID)
}

// queryPhase measures the load again with the slow query running in a
// loop over the window. The query is first calibrated to --query-time on
// the data the first phase left (with no load offered).
func queryPhase(ctx context.Context, spec phaseSpec) (phase, error) {
	o := spec.o
	// Its own client: a query must not wait for an ingest connection.
	qc := &http.Client{Timeout: max(o.timeout, 20*o.queryTime)}
	defer qc.CloseIdleConnections()
	q := &queryLoop{client: qc, url: spec.t.base + "/api/query", apiKey: spec.t.apiKey, target: o.queryTime, leaves: 4}
	fmt.Fprintf(spec.stderr, "bench: calibrating the query to about %s...\n", o.queryTime)
	if err := q.calibrate(ctx, 8, spec.stderr); err != nil {
		return phase{}, err
	}
	spec.name = fmt.Sprintf("the load, with a query of about %s run in a loop over the window (POST /api/query: an \"or\" of event leaves, each counting a property's distinct values per profile over one event name)", o.queryTime)
	spec.during = q.run
	ph, err := runPhase(ctx, spec)
	ph.queries = q.stats()
	return ph, err
}

// phaseSpec is what one measured phase of a run needs.
type phaseSpec struct {
	name   string // "" when the run has one phase
	o      ingestOpts
	t      *target
	client *http.Client
	w      *workload
	seq    *atomic.Uint64 // messageId sequence, shared by the phases
	stderr io.Writer
	// during, when set, runs over the measured window (from its start
	// until ctx is done at its end), beside the load.
	during func(ctx context.Context)
}

// phase is one measured window: warm-up, then the window, then the drain
// of the requests due in it.
type phase struct {
	name       string
	st         benchStats
	server     *serverView // nil when /metrics could not be read
	metricsE   error
	cpu0, cpu1 bench.CPUTimes // the machine's
	genCPU     time.Duration  // this process's CPU time over the window
	acked      int            // messages acknowledged, warm-up and drain included
	profile    string
	trace      string
	queries    *queryStats // the query loop's, when one ran
}

// runPhase offers the load for the warm-up and the window, measures the
// window, and returns once every request due in it is answered.
func runPhase(ctx context.Context, ps phaseSpec) (phase, error) {
	o := ps.o
	ph := phase{name: ps.name}
	lr := &loadRun{client: ps.client, url: ps.t.base + "/v1/batch", writeKey: ps.t.writeKey, w: ps.w, seq: ps.seq}
	if o.rate > 0 {
		lr.interval = time.Duration(float64(time.Second) * float64(o.batch) / o.rate)
	}
	lr.t0 = time.Now()
	ws := lr.t0.Add(o.warmup)
	we := ws.Add(o.duration)
	lr.end = we
	label := ""
	if ps.name != "" {
		label = " (" + ps.name + ")"
	}
	fmt.Fprintf(ps.stderr, "bench: %s warm-up, then %s measured%s...\n", o.warmup, o.duration, label)
	resc := make(chan []clientResult, 1)
	go func() { resc <- lr.run(ctx, o.concurrency) }()

	var m0, m1 metricsSnapshot
	if sleepUntil(ctx, ws) == nil {
		stopProfiles, err := startProfiles(o.cpuprofile, o.trace)
		if err != nil {
			<-resc // the clients stop at we
			return ph, err
		}
		ph.profile, ph.trace = o.cpuprofile, o.trace
		m0, ph.metricsE = scrapeMetrics(ctx, ps.client, ps.t.base+"/metrics")
		ph.cpu0 = bench.ReadCPUTimes()
		gen0 := processCPU()
		serverProf := make(chan error, 1)
		if o.serverProfile != "" && ps.t.adminKey != "" {
			go func() { serverProf <- fetchProfile(ctx, ps.t, o.duration, o.serverProfile) }()
		} else {
			serverProf <- nil
		}
		duringDone := make(chan struct{})
		dctx, stopDuring := context.WithDeadline(ctx, we)
		if ps.during != nil {
			go func() { defer close(duringDone); ps.during(dctx) }()
		} else {
			close(duringDone)
		}
		sleepUntil(ctx, we)
		ph.cpu1 = bench.ReadCPUTimes()
		ph.genCPU = processCPU() - gen0
		if err := stopProfiles(); err != nil {
			fmt.Fprintf(ps.stderr, "bench: %v\n", err)
		}
		if ph.metricsE == nil {
			m1, ph.metricsE = scrapeMetrics(ctx, ps.client, ps.t.base+"/metrics")
		}
		stopDuring()
		<-duringDone
		if err := <-serverProf; err != nil {
			fmt.Fprintf(ps.stderr, "bench: server CPU profile: %v\n", err)
		}
	}
	res := <-resc
	if ctx.Err() != nil {
		return ph, errors.New("interrupted")
	}
	ph.st = summarize(res, ws, we, o.rate > 0)
	for _, cr := range res {
		for _, s := range cr.samples {
			ph.acked += s.accepted
		}
	}
	if m0 != nil && m1 != nil {
		sv := diffMetrics(m0, m1)
		ph.server = &sv
	}
	return ph, nil
}

// storedCheck compares what the server stored with what it acknowledged.
type storedCheck struct {
	acked    int     // messages acknowledged to the clients, every phase
	metrics  float64 // cohort_ingest_messages_total{outcome="accepted"}
	schema   int64   // events counted by GET /api/schema
	metricsE error
	schemaE  error
}

// checkStored reads, from a server whose store held nothing before the
// run, how many messages it accepted (/metrics) and how many events it
// holds (/api/schema).
func checkStored(ctx context.Context, client *http.Client, t *target, acked int) *storedCheck {
	c := &storedCheck{acked: acked}
	m, err := scrapeMetrics(ctx, client, t.base+"/metrics")
	if err == nil {
		c.metrics = m[`cohort_ingest_messages_total{outcome="accepted"}`]
	}
	c.metricsE = err
	c.schema, c.schemaE = schemaEvents(ctx, client, t)
	return c
}

// schemaEvents sums the event counts of GET /api/schema.
func schemaEvents(ctx context.Context, client *http.Client, t *target) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/api/schema", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.apiKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /api/schema: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, fmt.Errorf("GET /api/schema: %s %s", resp.Status, b)
	}
	var s struct {
		Events []struct {
			Count int64 `json:"count"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, fmt.Errorf("GET /api/schema: %w", err)
	}
	var n int64
	for _, e := range s.Events {
		n += e.Count
	}
	return n, nil
}

// problem says what is wrong, or "" when the store holds exactly what
// was acknowledged. With failed requests the server may hold more (a
// request that timed out may still have been applied), never less.
func (c *storedCheck) problem(failed int) string {
	if c.metricsE != nil || c.schemaE != nil {
		return fmt.Sprint("could not check: ", errors.Join(c.metricsE, c.schemaE))
	}
	a := int64(c.acked)
	switch {
	case c.schema < a || int64(c.metrics) < a:
		return "the server holds fewer events than it acknowledged"
	case failed == 0 && (c.schema != a || int64(c.metrics) != a):
		return "the server holds more events than it acknowledged, with every request answered"
	}
	return ""
}

// fetchProfile writes the child server's CPU profile over d (whole seconds,
// at least one) to file.
func fetchProfile(ctx context.Context, t *target, d time.Duration, file string) error {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.base, secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.adminKey)
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET /debug/pprof/profile: %s: %s", resp.Status, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return f.Close()
}
