package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

const benchUsage = `Usage:
  cohort-bench ingest [flags]     HTTP ingestion throughput and latency
  cohort-bench segments [flags]   segment evaluation on an in-memory index
  cohort-bench realtime [flags]   real-time membership changes under load
  cohort-bench peers [flags]      the same conditions on PostgreSQL and DuckDB

cohort-bench SUBCOMMAND -h lists its flags, environment and an example.
Results and the commands that made them: BENCHMARKS.md.

Example:
  go run ./cmd/cohort-bench segments --profiles 20000 --runs 3
`

const benchIngestUsage = `Usage:
  cohort-bench ingest [flags]

Measures HTTP ingestion: POST /v1/batch of pre-generated track events, with
the server's durable commits. Without --url it starts a server in this
process (default configuration, a temporary data directory under $TMPDIR,
removed afterwards). It fails if any request is not answered 200
{"success": true}.

Environment:
  GOMEMLIMIT, GOMAXPROCS   the Go runtime's, for the in-process server

Example:
  cohort-bench ingest --duration 15s --warmup 2s
  cohort-bench ingest --rate 50000 --duration 20s --url http://127.0.0.1:8080 --write-key KEY
`

// benchCmd runs `cohort-bench SUBCOMMAND`.
func benchCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return errors.New("missing subcommand")
	}
	run := map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
		"ingest":   benchIngest,
		"segments": benchSegments,
		"realtime": benchRealtime,
		"peers":    benchPeers,
	}[args[0]]
	if run == nil {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, benchUsage)
			return nil
		}
		fmt.Fprint(stderr, benchUsage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args[1:], stdout, stderr)
}

// ingestOpts are the flags of `cohort-bench ingest`.
type ingestOpts struct {
	url, writeKey     string
	duration, warmup  time.Duration
	batch, eventBytes int
	concurrency       int
	rate              float64
	users             int
	seed              uint64
	timeout           time.Duration
	cpuprofile        string
	trace             string
}

func parseIngestFlags(args []string, stderr io.Writer) (ingestOpts, error) {
	var o ingestOpts
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchIngestUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "", "base URL of a running server (e.g. http://127.0.0.1:8080); default: an in-process server on 127.0.0.1:0")
	fs.StringVar(&o.writeKey, "write-key", "", "write key of the workspace to send to (required with --url)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before the measurement, not counted")
	fs.IntVar(&o.batch, "batch", 100, "messages per request")
	fs.IntVar(&o.eventBytes, "event-bytes", 400, "approximate JSON size of one message")
	fs.IntVar(&o.concurrency, "concurrency", 32, "client goroutines (each has at most one request in flight)")
	fs.Float64Var(&o.rate, "rate", 0, "events/s on a fixed open-loop schedule; 0: as fast as possible")
	fs.IntVar(&o.users, "users", 100000, "userId pool size (Zipf-skewed)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated content")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured window to `FILE` (server and client when in-process; only the client with --url)")
	fs.StringVar(&o.trace, "trace", "", "write a runtime execution trace of the measured window to `FILE` (go tool trace; -pprof=sync|syscall shows where goroutines wait)")
	if err := fs.Parse(args); err != nil {
		return o, err
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
		bad("--write-key needs --url (the in-process server makes its own key)")
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

	base, key, target := strings.TrimSuffix(strings.TrimSuffix(o.url, "/v1/batch"), "/"), o.writeKey, ""
	inProc := o.url == ""
	var serverLog *benchLog
	if inProc {
		lt, lerr := startLocalTarget(stderr, "wk_bench_"+runID)
		if lerr != nil {
			return lerr
		}
		defer func() { err = errors.Join(err, lt.stop()) }()
		base, key, serverLog = "http://"+lt.addr, lt.writeKey, lt.log
		target = fmt.Sprintf("in-process on %s, data in %s, default configuration (WAL fsync before every answer)", lt.addr, lt.dir)
	} else {
		target = base + " (its own configuration)"
	}

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
	if err := waitHealthy(ctx, client, base+"/healthz"); err != nil {
		return err
	}

	lr := &loadRun{client: client, url: base + "/v1/batch", writeKey: key, w: w}
	if o.rate > 0 {
		lr.interval = time.Duration(float64(time.Second) * float64(o.batch) / o.rate)
		if lr.interval <= 0 {
			return fmt.Errorf("--rate %g is too high for batches of %d", o.rate, o.batch)
		}
	}
	rep := &benchReport{opts: o, target: target, w: w, inProc: inProc, loadavg: loadAverage()}
	lr.t0 = time.Now()
	ws := lr.t0.Add(o.warmup)
	we := ws.Add(o.duration)
	lr.end = we
	fmt.Fprintf(stderr, "bench: %s warm-up, then %s measured...\n", o.warmup, o.duration)
	resc := make(chan []clientResult, 1)
	go func() { resc <- lr.run(ctx, o.concurrency) }()

	var m0, m1 metricsSnapshot
	if sleepUntil(ctx, ws) == nil {
		stopProfiles, err := startProfiles(o.cpuprofile, o.trace)
		if err != nil {
			<-resc // the clients stop at we
			return err
		}
		rep.profile, rep.trace = o.cpuprofile, o.trace
		m0, rep.metricsE = scrapeMetrics(ctx, client, base+"/metrics")
		rep.cpu0 = bench.ReadCPUTimes()
		sleepUntil(ctx, we)
		rep.cpu1 = bench.ReadCPUTimes()
		if err := stopProfiles(); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
		}
		if rep.metricsE == nil {
			m1, rep.metricsE = scrapeMetrics(ctx, client, base+"/metrics")
		}
	}
	res := <-resc
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	rep.st = summarize(res, ws, we, o.rate > 0)
	if serverLog != nil {
		rep.warnings = serverLog.warnings()
	}
	if m0 != nil && m1 != nil {
		sv := diffMetrics(m0, m1)
		rep.server = &sv
	}
	rep.print(stdout)
	if n := rep.st.failed(); n > 0 {
		return fmt.Errorf("%d of %d requests failed", n, rep.st.total)
	}
	return nil
}

// localTarget is the in-process server of a run.
type localTarget struct {
	addr, dir, writeKey string
	log                 *benchLog
	stop                func() error
}

// startLocalTarget opens a server with the default configuration on a new
// temporary data directory and serves it on a free loopback port. stop
// drains it, closes it and removes the directory.
func startLocalTarget(stderr io.Writer, writeKey string) (*localTarget, error) {
	dir, err := os.MkdirTemp("", "cohort-bench-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.HTTP = "127.0.0.1:0"
	cfg.Data = dir
	cfg.WriteKey = writeKey
	log := newBenchLog(stderr)
	srv, err := server.Open(cfg, server.Options{Logger: slog.New(log), Out: io.Discard})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	// The server has its own context: an interrupted run still drains it.
	sctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx) }()
	return &localTarget{
		addr: srv.Addr(), dir: dir, writeKey: writeKey, log: log,
		stop: func() error {
			cancel()
			serveErr := <-errc
			closeErr := srv.Close()
			return errors.Join(serveErr, closeErr, os.RemoveAll(dir))
		},
	}, nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		if sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) != nil {
			return fmt.Errorf("server at %s is not healthy: %v", url, last)
		}
	}
}

// startProfiles starts a CPU profile and an execution trace, for the paths
// that are not empty. stop ends both.
func startProfiles(cpuPath, tracePath string) (stop func() error, err error) {
	var stops []func() error
	stop = func() error {
		var errs []error
		for _, f := range stops {
			errs = append(errs, f())
		}
		return errors.Join(errs...)
	}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		stops = append(stops, func() error {
			pprof.StopCPUProfile()
			return f.Close()
		})
	}
	if tracePath != "" {
		f, err := os.Create(tracePath)
		if err == nil {
			if err = trace.Start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("trace: %w", err)
		}
		stops = append(stops, func() error {
			trace.Stop()
			return f.Close()
		})
	}
	return stop, nil
}

// dataFlags defines the generated data set's flags, shared by the
// benchmarks that generate one (events arrive in order by default).
func dataFlags(fs *flag.FlagSet, d *bench.Data) {
	d.InOrder = true
	fs.IntVar(&d.Profiles, "profiles", 1_000_000, "profiles to generate")
	d.Events = -1 // 20 per profile, once --profiles is known (checkData)
	fs.Var(eventsFlag{&d.Events}, "events", "`count` of events to generate (default 20 per profile)")
	fs.Uint64Var(&d.Seed, "seed", 1, "generator seed")
	fs.Var(arrivalFlag{&d.InOrder}, "arrival", "event arrival order: `ordered` (timestamp order, up to an hour late, as a live stream) or random (uniform over the period, random order)")
}

// checkData lists what is wrong with the data set's flags, after giving
// --events its default of 20 events per profile.
func checkData(d *bench.Data) []error {
	if d.Events == -1 {
		d.Events = 20 * d.Profiles
	}
	var errs []error
	if d.Profiles < 1 {
		errs = append(errs, errors.New("--profiles must be at least 1"))
	}
	if d.Events < 0 {
		errs = append(errs, errors.New("--events must not be negative"))
	}
	return errs
}

// eventsFlag is --events: a count that is not negative; -1, its default,
// means 20 events per profile.
type eventsFlag struct{ n *int }

func (f eventsFlag) String() string {
	if f.n == nil || *f.n < 0 {
		return ""
	}
	return strconv.Itoa(*f.n)
}

func (f eventsFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a count of events, not %q", s)
	}
	*f.n = n
	return nil
}

// arrivalFlag is --arrival: ordered (the default) or random.
type arrivalFlag struct{ inOrder *bool }

func (f arrivalFlag) String() string {
	if f.inOrder == nil || *f.inOrder {
		return "ordered"
	}
	return "random"
}

func (f arrivalFlag) Set(s string) error {
	switch s {
	case "ordered":
		*f.inOrder = true
	case "random":
		*f.inOrder = false
	default:
		return fmt.Errorf("want ordered or random, got %q", s)
	}
	return nil
}
