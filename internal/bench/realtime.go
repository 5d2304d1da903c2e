package bench

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/server"
)

// RealtimeOptions configure `cohort-bench realtime`.
type RealtimeOptions struct {
	Segments int     // live segments in all (timer segments included)
	Profiles int     // profiles loaded by identify before the run
	Rate     float64 // messages/s offered during the run (open loop)
	Duration time.Duration
	Warmup   time.Duration // load before the measured window
	// Timers is the number of (profile, segment) timers to have pending
	// when the run starts; TimersDue of them (<0: a fifth) fall due
	// during the measured window.
	Timers, TimersDue int
	History           int // events with past timestamps loaded before the segments (<0: 5 per profile)
	Clients           int // sending goroutines
	Batch             int // messages per request
	Seed              uint64
	Uniform           bool          // users drawn uniformly (default: the generator's half Zipf, half uniform)
	CPUProfile        string        // CPU profile of the measured window
	Progress          io.Writer     // phase lines (nil: discarded)
	Logger            *slog.Logger  // the server's log (nil: discarded)
	Drain             time.Duration // how long the change stream is read after the window (0: 3 s)
}

// DefaultRealtimeOptions are the flags' defaults.
func DefaultRealtimeOptions() RealtimeOptions {
	return RealtimeOptions{Segments: 200, Profiles: 100000, Rate: 50000, Duration: 30 * time.Second, Warmup: 5 * time.Second,
		Timers: 1000000, TimersDue: -1, History: -1, Clients: 64, Batch: 100, Seed: 1}
}

// Validate checks the options.
func (o RealtimeOptions) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if o.Segments < 1 {
		bad("--segments must be at least 1")
	}
	if o.Profiles < 10 {
		bad("--profiles must be at least 10")
	}
	if o.Rate <= 0 {
		bad("--rate must be positive")
	}
	if o.Duration < 5*time.Second {
		bad("--duration must be at least 5s (timers are due over the window)")
	}
	if o.Warmup < 0 {
		bad("--warmup must not be negative")
	}
	if o.Timers < 0 {
		bad("--timers must not be negative")
	}
	if o.Clients < 1 {
		bad("--clients must be at least 1")
	}
	if o.Batch < 1 || o.Batch > 500 {
		bad("--batch must be between 1 and 500")
	}
	if o.Rate > 0 && o.Batch > 0 && time.Duration(float64(time.Second)*float64(o.Batch)/o.Rate) <= 0 {
		bad("--rate %g is too high for batches of %d", o.Rate, o.Batch)
	}
	return errors.Join(errs...)
}

// RealtimeResult is what one run measured.
type RealtimeResult struct {
	Opts    RealtimeOptions
	Machine Machine
	LoadAvg string // before the run

	// Setup.
	IdentifyLoad, HistoryLoad, SegmentCreate, TimerLoad time.Duration
	HistoryEvents, TimerEvents                          int
	SegmentKinds                                        map[string]int
	SegmentSizes                                        []uint64
	PendingBase                                         int // timers of the mixed segments before the heartbeats
	PendingStart, PendingEnd                            int
	PreloadOverrun                                      time.Duration // preload ended this long after the planned start

	// The run.
	Window          time.Duration
	Messages        int // accepted messages answered within the window
	Requests        int
	TrackShare      float64
	Offered         float64
	LateSends       int
	MaxLate         time.Duration
	Failures        map[string]int
	FailureExample  map[string]string
	RequestLatency  RTDist
	ServerA2C       RTHist // cohort_accept_to_change_seconds over the window
	E2E             RTDist // send → change read from the stream, event/trait changes
	E2EServer       RTDist // send → the change's "at"
	E2EUnmatched    int
	ChangesByReason map[string]int // changes with "at" in the window
	StreamLag       RTDist         // the change's "at" → read from the stream, every change of the window

	// Timers.
	Lateness       RTHist // cohort_timer_lateness_seconds over the window
	DueInWindow    int    // planned heartbeat timers due in the window
	TimeExitsSeen  int    // of those, exits with reason time read from the stream
	TimeExitsAll   int    // every reason-time exit in the window
	TimeEntersAll  int
	TimeE2E        RTDist // due → exit read from the stream
	TimeAt         RTDist // due → the exit's "at" (the tick that fired it)
	TimeExitsLate1 int    // exits read more than 1 s after due

	// Resources over the window.
	ProcCPU    float64 // cores used by this process (server and load generator)
	MachineCPU float64
	IOWait     float64
	Steal      float64
	ApplyBusy  float64 // fraction of the window the applier spent applying
	Groups     float64
	GroupMsgs  float64
	SyncBusy   float64
	Syncs      float64
	RSS        float64
	GCCycles   float64
	Profile    string
}

// RunRealtime runs the benchmark once.
func RunRealtime(ctx context.Context, o RealtimeOptions) (*RealtimeResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.History < 0 {
		o.History = 5 * o.Profiles
	}
	if o.TimersDue < 0 {
		o.TimersDue = o.Timers / 5
	}
	if o.Drain == 0 {
		o.Drain = 3 * time.Second
	}
	res := &RealtimeResult{Opts: o, Machine: ThisMachine(), LoadAvg: LoadAvg(), SegmentKinds: map[string]int{},
		Failures: map[string]int{}, FailureExample: map[string]string{}, ChangesByReason: map[string]int{}}
	say := func(f string, a ...any) { fmt.Fprintf(o.Progress, "bench realtime: "+f+"\n", a...) }

	var rb [4]byte
	crand.Read(rb[:])
	runID := hex.EncodeToString(rb[:])

	// The server, in this process, its goroutines labelled for pprof.
	dir, err := os.MkdirTemp("", "cohort-bench-realtime-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.HTTP, cfg.Data = "127.0.0.1:0", dir
	cfg.WriteKey, cfg.APIKey = "wk_rt_"+runID, "ak_rt_"+runID
	var srv *server.Server
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	serveErr := make(chan error, 1)
	pprof.Do(context.Background(), pprof.Labels("role", "server"), func(context.Context) {
		srv, err = server.Open(cfg, server.Options{Logger: o.Logger, Out: io.Discard})
		if err != nil {
			return
		}
		if err = srv.Listen(); err != nil {
			srv.Close()
			return
		}
		go func() { serveErr <- srv.Serve(sctx) }()
	})
	if err != nil {
		return nil, err
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		scancel()
		return errors.Join(<-serveErr, srv.Close())
	}
	defer stop()
	ws, ok := srv.In.WorkspaceByName(server.DefaultWorkspace)
	if !ok {
		return nil, errors.New("no default workspace")
	}
	base := "http://" + srv.Addr()
	say("server on %s, data in %s (default configuration: WAL synced before every answer)", srv.Addr(), dir)

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Clients + 16,
		MaxIdleConnsPerHost: o.Clients + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	c := &rtClient{client: client, base: base, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.WriteKey+":")), apiKey: cfg.APIKey}

	// 1. Profiles.
	now := time.Now().UTC()
	t := time.Now()
	if err := c.sendAll(ctx, rtIdentifyBodies(o.Seed, o.Profiles, o.Batch, now, runID), 8); err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	res.IdentifyLoad = time.Since(t)
	say("loaded %d profiles (identify) in %s", o.Profiles, res.IdentifyLoad.Round(time.Millisecond))

	// 2. History: events over the last 30 days, so that counts, windows
	// and aggregates have data.
	t = time.Now()
	hb := rtHistoryBodies(o.Seed, o.Profiles, o.History, o.Batch, now, runID, o.Uniform)
	if err := c.sendAll(ctx, hb, 8); err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}
	res.HistoryEvents = o.History
	res.HistoryLoad = time.Since(t)
	loadRate := float64(o.Profiles+o.History) / (res.IdentifyLoad + res.HistoryLoad).Seconds()
	say("loaded %d history events in %s (%.0f messages/s while loading)", o.History, res.HistoryLoad.Round(time.Millisecond), loadRate)

	// 3. Segments: mixed kinds first, then the timer segments, as many as
	// the timers need (at most half of all).
	k := 0
	if o.Timers > 0 {
		k = min((o.Timers+o.Profiles-1)/o.Profiles+1, max(2, o.Segments/2))
	}
	nMixed := max(0, o.Segments-k)
	t = time.Now()
	mixed := rtMixedSegments(o.Seed, nMixed)
	for _, s := range mixed {
		if err := c.createSegment(ctx, s); err != nil {
			return nil, err
		}
		res.SegmentKinds[strings.SplitN(s.Kind, " (", 2)[0]]++
	}
	if _, err := c.waitReady(ctx, len(mixed)); err != nil {
		return nil, err
	}
	res.PendingBase = srv.Seg.PendingTimers()
	// The due heartbeats are always loaded (the mixed segments' timers
	// are due hours or days away); the long ones make up the rest of
	// --timers.
	nShort := 0
	if k > 0 {
		nShort = min(max(1, (o.TimersDue+o.Profiles-1)/o.Profiles), k-1)
		if o.TimersDue == 0 {
			nShort = 0
		}
	}
	nDue := min(o.TimersDue, o.Profiles*nShort)
	want := max(0, o.Timers-res.PendingBase-nDue)
	nLongSlots := k - nShort
	nLong := min(want, o.Profiles*nLongSlots)
	if nDue < o.TimersDue || nLong < want {
		say("warning: %d timer segments for %d profiles give %d heartbeat timers instead of %d", k, o.Profiles, nDue+nLong, o.TimersDue+want)
	}
	need := 2*time.Duration(float64(nDue)/loadRate*float64(time.Second)) + o.Warmup + o.Duration + 30*time.Second
	slots := rtTimerSlots(nShort, nLongSlots, need)
	for _, s := range slots {
		if err := c.createSegment(ctx, s.seg); err != nil {
			return nil, err
		}
		res.SegmentKinds[strings.SplitN(s.seg.Kind, " (", 2)[0]]++
	}
	sizes, err := c.waitReady(ctx, len(mixed)+len(slots))
	if err != nil {
		return nil, err
	}
	res.SegmentSizes = sizes
	res.SegmentCreate = time.Since(t)
	say("created %d segments (%d mixed, %d timer segments) via POST /api/segments in %s; %d timers pending from the mixed ones",
		len(sizes), nMixed, len(slots), res.SegmentCreate.Round(time.Millisecond), res.PendingBase)

	// 4. Timers: heartbeats for the long slots (pending after the run),
	// then for the short ones (due during the measured window).
	var short, long []int
	for i, s := range slots {
		if s.short {
			short = append(short, i)
		} else {
			long = append(long, i)
		}
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x74696d6572))
	t = time.Now()
	var pairs []rtPair
	for i := range nLong { // spread over the long slots, one per (profile, slot)
		j := long[i%len(long)]
		due := time.Now().Add(slots[j].window - time.Duration(r.Int64N(int64(slots[j].window/2))))
		pairs = append(pairs, rtPair{profile: i / len(long), slot: j, due: due})
	}
	if err := c.sendAll(ctx, rtHeartbeatBodies(pairs, slots, o.Batch, runID, "l"), 8); err != nil {
		return nil, fmt.Errorf("load timers: %w", err)
	}
	longLoad := time.Since(t)
	if nLong > 0 {
		loadRate = float64(nLong) / longLoad.Seconds()
	}
	// The window is planned now: the due-in-run heartbeats are sent, then
	// the load starts, then the window opens after the warm-up.
	estDue := time.Duration(1.5 * float64(nDue) / loadRate * float64(time.Second))
	t0 := time.Now().Add(estDue + time.Second)
	wStart := t0.Add(o.Warmup)
	wEnd := wStart.Add(o.Duration)
	first := wStart.Add(300 * time.Millisecond)
	span := wEnd.Add(-1500 * time.Millisecond).Sub(first)
	perm := r.Perm(max(nDue, 1))
	duePairs := make([]rtPair, nDue)
	dueOf := make(map[string]int64, nDue) // user \x00 segment → due
	for i := range nDue {
		due := first.Add(time.Duration((float64(perm[i]) + 0.5) / float64(nDue) * float64(span)))
		duePairs[i] = rtPair{profile: i % o.Profiles, slot: short[i/o.Profiles], due: due}
	}
	bodies := rtHeartbeatBodies(duePairs, slots, o.Batch, runID, "d")
	for _, p := range duePairs {
		dueOf[gen.UserID(p.profile)+"\x00"+slots[p.slot].seg.ID] = p.due.UnixNano()
	}
	if err := c.sendAll(ctx, bodies, 8); err != nil {
		return nil, fmt.Errorf("load timers: %w", err)
	}
	res.TimerEvents = nLong + nDue
	res.TimerLoad = time.Since(t)
	res.PendingStart = srv.Seg.PendingTimers()
	if late := time.Since(t0); late > 0 {
		// The load starts now and the window moves with it; the timers
		// keep their due times (some may now fall in the warm-up).
		res.PreloadOverrun = late
		t0 = time.Now()
		wStart = t0.Add(o.Warmup)
		wEnd = wStart.Add(o.Duration)
	}
	for _, due := range dueOf {
		if due >= wStart.UnixNano() && due < wEnd.UnixNano() {
			res.DueInWindow++
		}
	}
	say("loaded %d heartbeats in %s: %d timers pending (%d of them due in the measured window)",
		res.TimerEvents, res.TimerLoad.Round(time.Millisecond), res.PendingStart, res.DueInWindow)
	if res.PreloadOverrun > 0 {
		say("warning: the timer preload ended %s after the planned start", res.PreloadOverrun.Round(time.Millisecond))
	}

	// 5. The run.
	templates := rtRunTemplates(o.Seed, o.Profiles, o.Batch, 1024, runID, o.Uniform)
	tracks, msgs := 0, 0
	for i := range templates {
		tracks += templates[i].events
		msgs += len(templates[i].users)
	}
	res.TrackShare = float64(tracks) / float64(msgs)
	res.Offered = o.Rate

	since, _ := srv.Seg.Durable(ws.Num)
	var changes []rtChange
	sseCtx, sseCancel := context.WithCancel(ctx)
	defer sseCancel()
	sseDone := make(chan error, 1)
	ready := make(chan error, 1)
	sseClient := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	go pprof.Do(sseCtx, pprof.Labels("role", "stream-reader"), func(ctx context.Context) {
		sseDone <- rtReadSSE(ctx, sseClient, fmt.Sprintf("%s/api/changes?since=%d", base, since), cfg.APIKey, ready,
			func(ch rtChange) { changes = append(changes, ch) })
	})
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("change stream: %w", err)
	}

	lr := &rtLoad{c: c, templates: templates, batch: o.Batch, t0: t0.UnixNano(),
		interval: int64(float64(time.Second) * float64(o.Batch) / o.Rate), end: wEnd.UnixNano()}
	var wg sync.WaitGroup
	samples := make([][]rtSample, o.Clients)
	fails := make([][]rtFailure, o.Clients)
	say("run: %.0f messages/s for %s warm-up + %s measured, %d clients", o.Rate, o.Warmup, o.Duration, o.Clients)
	for i := range o.Clients {
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("role", "load-generator"), func(ctx context.Context) {
			defer wg.Done()
			samples[i], fails[i] = lr.client(ctx)
		})
	}
	var m0, m1 RTProm
	var cpu0, cpu1 CPUTimes
	var stopProfile func()
	if rtSleepUntil(ctx, wStart) == nil {
		if o.CPUProfile != "" {
			f, err := os.Create(o.CPUProfile)
			if err == nil {
				if err = pprof.StartCPUProfile(f); err != nil {
					f.Close()
				}
			}
			if err != nil {
				say("warning: cpu profile: %v", err)
			} else {
				res.Profile = o.CPUProfile
				stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
			}
		}
		m0, err = rtScrape(ctx, client, base+"/metrics")
		if err != nil {
			say("warning: %v", err)
		}
		cpu0 = ReadCPUTimes()
		rtSleepUntil(ctx, wEnd)
		cpu1 = ReadCPUTimes()
		if stopProfile != nil {
			stopProfile()
		}
		if m0 != nil {
			if m1, err = rtScrape(ctx, client, base+"/metrics"); err != nil {
				say("warning: %v", err)
			}
		}
		res.PendingEnd = srv.Seg.PendingTimers()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	// Let the stream deliver what the window caused.
	rtSleepUntil(ctx, time.Now().Add(o.Drain))
	sseCancel()
	if err := <-sseDone; err != nil {
		say("warning: change stream: %v", err)
	}
	if err := stop(); err != nil {
		say("warning: stopping the server: %v", err)
	}

	// 6. Figures.
	ws0, we0 := wStart.UnixNano(), wEnd.UnixNano()
	res.Window = o.Duration
	var lat []time.Duration
	var all []rtSample
	for i := range samples {
		for _, s := range samples[i] {
			all = append(all, s)
			if s.done >= ws0 && s.done < we0 && s.ok {
				res.Requests++
				res.Messages += int(s.accepted)
			}
			if s.due < ws0 || s.due >= we0 {
				continue
			}
			lat = append(lat, time.Duration(s.done-s.due))
			if d := time.Duration(s.sent - s.due); d > time.Millisecond {
				res.LateSends++
				res.MaxLate = max(res.MaxLate, d)
			}
		}
		for _, f := range fails[i] {
			res.Failures[f.class]++
			if _, ok := res.FailureExample[f.class]; !ok {
				res.FailureExample[f.class] = f.detail
			}
		}
	}
	res.RequestLatency = rtDistOf(lat)
	if m0 != nil && m1 != nil {
		res.ServerA2C = RTHistDiff(m0, m1, "cohort_accept_to_change_seconds")
		res.Lateness = RTHistDiff(m0, m1, "cohort_timer_lateness_seconds")
		d := func(k string) float64 { return m1[k] - m0[k] }
		secs := o.Duration.Seconds()
		res.ProcCPU = d("process_cpu_seconds_total") / secs
		res.Groups = d("cohort_ingest_apply_seconds_count")
		res.ApplyBusy = d("cohort_ingest_apply_seconds_sum") / secs
		res.GroupMsgs = d("cohort_ingest_group_messages_sum")
		res.Syncs = d("cohort_ingest_sync_seconds_count")
		res.SyncBusy = d("cohort_ingest_sync_seconds_sum") / secs
		res.RSS = m1["process_resident_memory_bytes"]
		res.GCCycles = d("go_gc_duration_seconds_count")
	}
	if cpu0.OK && cpu1.OK {
		secs := o.Duration.Seconds()
		res.MachineCPU = (cpu1.Busy - cpu0.Busy) / secs
		res.IOWait = (cpu1.IOWait - cpu0.IOWait) / secs
		res.Steal = (cpu1.Steal - cpu0.Steal) / secs
	}

	// End to end: each event/trait change is matched to the latest request
	// carrying its user sent before the change's "at".
	sort.Slice(all, func(i, j int) bool { return all[i].sent < all[j].sent })
	sends := map[string][]int64{}
	for _, s := range all {
		if !s.ok {
			continue
		}
		for _, u := range templates[s.tmpl].users {
			if l := sends[u]; len(l) == 0 || l[len(l)-1] != s.sent {
				sends[u] = append(l, s.sent)
			}
		}
	}
	var e2e, e2eAt, tE2E, tAt, lag []time.Duration
	for _, ch := range changes {
		if ch.at < ws0 || ch.at >= we0 {
			continue
		}
		res.ChangesByReason[ch.reason]++
		lag = append(lag, time.Duration(ch.recv-ch.at))
		switch ch.reason {
		case "event", "trait":
			l := sends[ch.user]
			i := sort.Search(len(l), func(i int) bool { return l[i] > ch.at }) - 1
			if i < 0 {
				res.E2EUnmatched++
				continue
			}
			e2e = append(e2e, time.Duration(ch.recv-l[i]))
			e2eAt = append(e2eAt, time.Duration(ch.at-l[i]))
		case "time":
			if ch.enter {
				res.TimeEntersAll++
				continue
			}
			res.TimeExitsAll++
			due, ok := dueOf[ch.user+"\x00"+ch.segment]
			if !ok || due < ws0 || due >= we0 {
				continue
			}
			res.TimeExitsSeen++
			tE2E = append(tE2E, time.Duration(ch.recv-due))
			tAt = append(tAt, time.Duration(ch.at-due))
			if ch.recv-due > int64(time.Second) {
				res.TimeExitsLate1++
			}
		}
	}
	res.StreamLag = rtDistOf(lag)
	res.E2E, res.E2EServer = rtDistOf(e2e), rtDistOf(e2eAt)
	res.TimeE2E, res.TimeAt = rtDistOf(tE2E), rtDistOf(tAt)
	return res, nil
}

// rtClient talks to the server as a user would.
type rtClient struct {
	client     *http.Client
	base, auth string
	apiKey     string
}

// sendAll posts every body to /v1/batch with conc concurrent requests,
// failing on any answer but 200 {"success": true}.
func (c *rtClient) sendAll(ctx context.Context, bodies [][]byte, conc int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					return
				}
				if err := c.post(ctx, bodies[i]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func (c *rtClient) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", c.auth)
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"success":true`)) {
		return fmt.Errorf("POST /v1/batch: %s %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

func (c *rtClient) api(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *rtClient) createSegment(ctx context.Context, s RTSegment) error {
	body, _ := json.Marshal(map[string]any{"id": s.ID, "name": s.Kind, "condition": json.RawMessage(s.Condition)})
	code, b, err := c.api(ctx, http.MethodPost, "/api/segments", body)
	if err != nil {
		return fmt.Errorf("create segment %s: %w", s.ID, err)
	}
	if code != http.StatusCreated {
		return fmt.Errorf("create segment %s %s: %d %s", s.ID, s.Condition, code, bytes.TrimSpace(b))
	}
	return nil
}

// waitReady polls GET /api/segments until all n are ready, and returns
// their sizes.
func (c *rtClient) waitReady(ctx context.Context, n int) ([]uint64, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		code, b, err := c.api(ctx, http.MethodGet, "/api/segments", nil)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET /api/segments: %d %s", code, b)
		}
		var l struct {
			Segments []struct {
				Status string `json:"status"`
				Size   uint64 `json:"size"`
			} `json:"segments"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("GET /api/segments: %w", err)
		}
		readyN := 0
		var sizes []uint64
		for _, s := range l.Segments {
			if s.Status == "ready" {
				readyN++
			}
			sizes = append(sizes, s.Size)
		}
		if readyN == n && len(l.Segments) == n {
			return sizes, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("segments not ready after 10 minutes (%d of %d)", readyN, n)
		}
		if err := rtSleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return nil, err
		}
	}
}

// rtHeartbeatBodies encodes the pairs' heartbeats in batches. A pair whose
// timestamp would be in the future (its window is shorter than the time
// left to its due time) is moved to now, and its due time with it.
func rtHeartbeatBodies(pairs []rtPair, slots []rtSlot, batch int, runID, tag string) [][]byte {
	var out [][]byte
	var msgs []json.RawMessage
	now := time.Now()
	for i := range pairs {
		p := &pairs[i]
		s := slots[p.slot]
		if p.due.Add(-s.window).After(now) {
			p.due = now.Add(s.window)
		}
		msgs = append(msgs, rtHeartbeatJSON(*p, s, fmt.Sprintf("rt-%s-%s-%d", runID, tag, i)))
		if len(msgs) == batch {
			out = append(out, rtBatchBody(msgs))
			msgs = msgs[:0]
		}
	}
	if len(msgs) > 0 {
		out = append(out, rtBatchBody(msgs))
	}
	return out
}

// rtLoad is the open-loop load of the run: request k is due at
// t0 + k·interval, whichever client is free sends it.
type rtLoad struct {
	c         *rtClient
	templates []rtTemplate
	batch     int
	t0        int64
	interval  int64
	end       int64
	next      atomic.Int64
}

type rtSample struct {
	tmpl            int32
	accepted        int32
	ok              bool
	due, sent, done int64
}

type rtFailure struct{ class, detail string }

func (l *rtLoad) client(ctx context.Context) ([]rtSample, []rtFailure) {
	var out []rtSample
	var fails []rtFailure
	buf := make([]byte, 0, 64<<10)
	respBuf := make([]byte, 4096)
	for ctx.Err() == nil {
		k := l.next.Add(1) - 1
		due := l.t0 + k*l.interval
		if due >= l.end {
			break
		}
		if d := time.Duration(due - time.Now().UnixNano()); d > 0 {
			time.Sleep(d)
		}
		ti := int(k % int64(len(l.templates)))
		t := &l.templates[ti]
		buf = t.fill(buf, uint64(k)*uint64(l.batch))
		s := rtSample{tmpl: int32(ti), due: due, sent: time.Now().UnixNano()}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.c.base+"/v1/batch", bytes.NewReader(buf))
		if err != nil {
			fails = append(fails, rtFailure{"request", err.Error()})
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", l.c.auth)
		resp, err := l.c.client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				fails = append(fails, rtFailure{"transport", err.Error()})
			}
			continue
		}
		n, _ := io.ReadFull(resp.Body, respBuf)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.done = time.Now().UnixNano()
		body := respBuf[:n]
		switch {
		case resp.StatusCode != http.StatusOK:
			fails = append(fails, rtFailure{fmt.Sprintf("HTTP %d", resp.StatusCode), string(bytes.TrimSpace(body))})
		case !bytes.Contains(body, []byte(`"success":true`)):
			fails = append(fails, rtFailure{"rejected messages", string(bytes.TrimSpace(body))})
		default:
			s.ok = true
			s.accepted = int32(len(t.users))
		}
		out = append(out, s)
	}
	return out, fails
}

func rtSleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rtMedian returns the median of xs (the lower middle for an even count).
func rtMedian[T int | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		var z T
		return z
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
