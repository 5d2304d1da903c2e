package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/bench"
)

// benchStats summarises a run's measured window.
type benchStats struct {
	window time.Duration

	// Requests answered within the window: the throughput figures.
	requests int
	accepted int
	bytes    int64

	// Latencies of the requests due within the window, sorted.
	latencies []time.Duration
	// Open loop only: requests sent more than 1 ms after they were due
	// (every client was busy, or the client got no CPU), and the worst such
	// delay.
	lateSends int
	maxLate   time.Duration

	// Every failed request of the run, warm-up and drain included.
	failures map[string]int
	examples map[string]string
	total    int // requests of the run
}

func summarize(res []clientResult, ws, we time.Time, openLoop bool) benchStats {
	st := benchStats{window: we.Sub(ws), failures: map[string]int{}, examples: map[string]string{}}
	for _, cr := range res {
		st.total += len(cr.samples) + len(cr.failures)
		for _, s := range cr.samples {
			if !s.done.Before(ws) && s.done.Before(we) {
				st.requests++
				st.accepted += s.accepted
				st.bytes += int64(s.bytes)
			}
			if s.due.Before(ws) || !s.due.Before(we) {
				continue
			}
			lat := s.done.Sub(s.sent)
			if openLoop {
				lat = s.done.Sub(s.due)
				if late := s.sent.Sub(s.due); late > time.Millisecond {
					st.lateSends++
					st.maxLate = max(st.maxLate, late)
				}
			}
			st.latencies = append(st.latencies, lat)
		}
		for _, f := range cr.failures {
			st.failures[f.class]++
			if _, ok := st.examples[f.class]; !ok {
				st.examples[f.class] = f.detail
			}
		}
	}
	slices.Sort(st.latencies)
	return st
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted))-1e-9)) - 1 // 99.9% of 1000 is 999, not 999.0000001
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (st *benchStats) failed() int {
	n := 0
	for _, c := range st.failures {
		n += c
	}
	return n
}

// metricsSnapshot is a scrape of the server's /metrics: series → value.
type metricsSnapshot map[string]float64

// scrapeMetrics reads Prometheus text from url. Only lines of the form
// `name{labels} value` are kept.
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (metricsSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m, err := bench.RTParseProm(resp.Body)
	return metricsSnapshot(m), err
}

// serverView is what the server's own metrics say about the window.
type serverView struct {
	accepted, duplicates, rejected float64
	groups, applySec               float64
	groupMsgs                      float64
	syncs, syncSec                 float64
	cpuSec                         float64
	gcCycles                       float64
	haveCPU, haveGC                bool
}

func diffMetrics(a, b metricsSnapshot) serverView {
	d := func(k string) float64 { return b[k] - a[k] }
	_, haveCPU := b["process_cpu_seconds_total"]
	_, haveGC := b["go_gc_duration_seconds_count"]
	return serverView{
		accepted:   d(`cohort_ingest_messages_total{outcome="accepted"}`),
		duplicates: d(`cohort_ingest_messages_total{outcome="duplicate"}`),
		rejected:   d(`cohort_ingest_messages_total{outcome="rejected"}`),
		groups:     d("cohort_ingest_apply_seconds_count"),
		applySec:   d("cohort_ingest_apply_seconds_sum"),
		groupMsgs:  d("cohort_ingest_group_messages_sum"),
		syncs:      d("cohort_ingest_sync_seconds_count"),
		syncSec:    d("cohort_ingest_sync_seconds_sum"),
		cpuSec:     d("process_cpu_seconds_total"),
		gcCycles:   d("go_gc_duration_seconds_count"),
		haveCPU:    haveCPU,
		haveGC:     haveGC,
	}
}

// loadAverage is the 1-minute load average, or "" when unknown.
func loadAverage() string {
	f := strings.Fields(bench.LoadAvg())
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// benchReport is everything printed at the end of a run.
type benchReport struct {
	opts    ingestOpts
	t       *target
	w       *workload
	phases  []phase
	stored  *storedCheck // nil when the store was not new (--url)
	loadavg string       // the 1-minute load average before the run
	// The server's warnings over the whole run, counted.
	warnings []string
}

// acked is the number of messages acknowledged over the run.
func (r *benchReport) acked() int {
	n := 0
	for _, ph := range r.phases {
		n += ph.acked
	}
	return n
}

// verdict is the run's error: failed requests, or a store that does not
// hold what was acknowledged.
func (r *benchReport) verdict() error {
	failed, total := 0, 0
	for _, ph := range r.phases {
		failed += ph.st.failed()
		total += ph.st.total
	}
	var errs []error
	if failed > 0 {
		errs = append(errs, fmt.Errorf("%d of %d requests failed", failed, total))
	}
	if r.stored != nil {
		if p := r.stored.problem(failed); p != "" {
			errs = append(errs, fmt.Errorf("stored events: %s", p))
		}
	}
	return errors.Join(errs...)
}

func (r *benchReport) print(out io.Writer) {
	o, w := r.opts, r.w
	mode := "as fast as possible (closed loop: each client sends when it has its previous answer)"
	if o.rate > 0 {
		mode = fmt.Sprintf("%s events/s = %.1f requests/s on a fixed schedule (open loop; latency from the scheduled send time)",
			thousands(o.rate), o.rate/float64(o.batch))
	}
	fmt.Fprintf(out, "cohort-bench ingest\n")
	fmt.Fprintf(out, "  machine      %d CPUs, %s/%s, %s, %s; the load generator runs with GOMAXPROCS %d\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cmp.Or(bench.ThisMachine().CPU, "unknown CPU"), runtime.Version(), runtime.GOMAXPROCS(0))
	if r.loadavg != "" {
		fmt.Fprintf(out, "               load average %s before the run\n", r.loadavg)
	}
	fmt.Fprintf(out, "  server       %s\n", r.t.desc)
	if r.t.version != "" {
		fmt.Fprintf(out, "               %s\n", r.t.version)
	}
	fmt.Fprintf(out, "  workload     POST /v1/batch, %d track events per request, %.0f B per event, %.1f KB per body; %d clients\n",
		o.batch, w.meanEvent, w.meanBody/1024, o.concurrency)
	fmt.Fprintf(out, "               %d users (Zipf: the hottest sends %.2f%% of the messages, the top 1%% %.0f%%), %d event names (Zipf)\n",
		o.users, 100*w.hotUser, 100*w.top1pct, len(benchEventNames()))
	fmt.Fprintf(out, "               timestamps in ms, up to 5 s before sentAt in random order (late, out of order)\n")
	fmt.Fprintf(out, "               %s distinct pre-generated messages, sent with unique messageIds\n", thousands(float64(w.distinct)))
	fmt.Fprintf(out, "  load         %s\n", mode)
	for _, ph := range r.phases {
		r.printPhase(out, &ph)
	}
	if len(r.phases) == 2 && r.phases[1].queries != nil {
		a, b := r.phases[0].st.latencies, r.phases[1].st.latencies
		fmt.Fprintln(out)
		fmt.Fprintf(out, "  query moved  ingest p50 by %+.2fms, p99 by %+.2fms, max by %+.2fms\n",
			float64(percentile(b, 50)-percentile(a, 50))/1e6, float64(percentile(b, 99)-percentile(a, 99))/1e6,
			float64(percentile(b, 100)-percentile(a, 100))/1e6)
	}
	if c := r.stored; c != nil {
		fmt.Fprintln(out)
		switch {
		case c.metricsE != nil || c.schemaE != nil:
			fmt.Fprintf(out, "  stored       %s\n", c.problem(0))
		default:
			fmt.Fprintf(out, "  stored       %s messages acknowledged to the clients; the server accepted %s (/metrics) and holds %s events (/api/schema)\n",
				thousands(float64(c.acked)), thousands(c.metrics), thousands(float64(c.schema)))
		}
	}
	for i, w := range r.warnings {
		label := ""
		if i == 0 {
			label = "warnings"
		}
		fmt.Fprintf(out, "  %-12s %s (whole run)\n", label, w)
	}
}

func (r *benchReport) printPhase(out io.Writer, ph *phase) {
	o, st := r.opts, ph.st
	secs := st.window.Seconds()
	fmt.Fprintln(out)
	if ph.name != "" {
		fmt.Fprintf(out, "  phase        %s\n", ph.name)
	}
	fmt.Fprintf(out, "  window       %s measured after %s warm-up\n", st.window.Round(time.Millisecond), o.warmup)
	offered := ""
	if o.rate > 0 {
		offered = fmt.Sprintf(", of %s offered", thousands(o.rate))
	}
	fmt.Fprintf(out, "  events/s     %s   (%s accepted messages answered in the window%s)\n",
		thousands(float64(st.accepted)/secs), thousands(float64(st.accepted)), offered)
	fmt.Fprintf(out, "  requests/s   %s\n", thousands1(float64(st.requests)/secs))
	fmt.Fprintf(out, "  bytes/s      %.1f MB/s of request bodies\n", float64(st.bytes)/secs/1e6)
	fmt.Fprintf(out, "  latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s   (%d requests due in the window)\n",
		ms(percentile(st.latencies, 50)), ms(percentile(st.latencies, 90)), ms(percentile(st.latencies, 99)),
		ms(percentile(st.latencies, 99.9)), ms(percentile(st.latencies, 100)), len(st.latencies))
	if o.rate > 0 {
		if st.lateSends > 0 {
			fmt.Fprintf(out, "  late sends   %d requests left more than 1 ms after their scheduled time (worst %s: every client busy, or the client starved of CPU); the delay is in their latencies\n",
				st.lateSends, ms(st.maxLate))
		} else {
			fmt.Fprintf(out, "  late sends   none (every request left on schedule)\n")
		}
	}
	if n := st.failed(); n == 0 {
		fmt.Fprintf(out, "  errors       none (%d requests in all, warm-up included, every one answered 200 {\"success\": true})\n", st.total)
	} else {
		fmt.Fprintf(out, "  errors       %d of %d requests (warm-up and drain included):\n", n, st.total)
		for _, class := range slices.Sorted(maps.Keys(st.failures)) {
			fmt.Fprintf(out, "                 %-28s %6d   e.g. %s\n", class, st.failures[class], st.examples[class])
		}
	}
	if q := ph.queries; q != nil {
		if q.n > 0 {
			fmt.Fprintf(out, "  queries      %d completed in the window: p50 %s, min %s, max %s; %d to %d leaves\n",
				q.n, ms(q.p50), ms(q.min), ms(q.max), q.minLeaf, q.maxLeaf)
		} else {
			fmt.Fprintf(out, "  queries      none completed in the window\n")
		}
		if q.errors > 0 {
			fmt.Fprintf(out, "               %d failed, the last: %v\n", q.errors, q.lastErr)
		}
	}
	inProc := r.t.kind == targetInProc
	if sv := ph.server; sv != nil {
		fmt.Fprintln(out)
		fmt.Fprintf(out, "  server's /metrics over the window:\n")
		fmt.Fprintf(out, "    messages   %s accepted, %s duplicate, %s rejected\n",
			thousands(sv.accepted), thousands(sv.duplicates), thousands(sv.rejected))
		if sv.groups > 0 {
			fmt.Fprintf(out, "    applier    %s commit groups, %.0f messages each, %s apply+commit each; busy %.0f%% of the window\n",
				thousands(sv.groups), sv.groupMsgs/sv.groups, ms(time.Duration(sv.applySec/sv.groups*1e9)), 100*sv.applySec/secs)
		}
		if sv.syncs > 0 {
			fmt.Fprintf(out, "    syncer     %s WAL syncs, %s each, %.1f groups per sync; busy %.0f%% of the window\n",
				thousands(sv.syncs), ms(time.Duration(sv.syncSec/sv.syncs*1e9)), sv.groups/sv.syncs, 100*sv.syncSec/secs)
		}
		if sv.haveCPU {
			perEvent := ""
			if sv.accepted > 0 {
				perEvent = fmt.Sprintf(" (%.1f µs of CPU per accepted event)", sv.cpuSec/sv.accepted*1e6)
			}
			if inProc {
				fmt.Fprintf(out, "    CPU        %.2f cores used by the server and load generator (one process), of %d%s\n", sv.cpuSec/secs, runtime.NumCPU(), perEvent)
			} else {
				fmt.Fprintf(out, "    CPU        %.2f cores used by the server, of %d%s\n", sv.cpuSec/secs, runtime.NumCPU(), perEvent)
				if ph.genCPU > 0 {
					fmt.Fprintf(out, "               %.2f cores used by the load generator (this process)\n", ph.genCPU.Seconds()/secs)
				}
			}
		}
		if sv.haveCPU && ph.cpu0.OK && ph.cpu1.OK {
			all := (ph.cpu1.Busy - ph.cpu0.Busy) / secs
			ours := sv.cpuSec / secs
			if !inProc {
				ours += ph.genCPU.Seconds() / secs
			}
			fmt.Fprintf(out, "    machine    %.2f cores busy in all, %.2f of them by other processes; iowait %.2f, steal %.2f\n",
				all, max(0, all-ours), (ph.cpu1.IOWait-ph.cpu0.IOWait)/secs, (ph.cpu1.Steal-ph.cpu0.Steal)/secs)
			if all-ours > 0.1 {
				fmt.Fprintf(out, "               (the measurement competed with other work on this machine)\n")
			}
		}
		if sv.haveGC {
			fmt.Fprintf(out, "    GC         %s cycles (the server's)\n", thousands(sv.gcCycles))
		}
	} else if ph.metricsE != nil {
		fmt.Fprintf(out, "\n  (server metrics unavailable: %v)\n", ph.metricsE)
	}
	if ph.profile != "" {
		fmt.Fprintf(out, "\n  CPU profile of the window in %s (go tool pprof -top %s)\n", ph.profile, ph.profile)
	}
	if ph.trace != "" {
		fmt.Fprintf(out, "  execution trace of the window in %s (go tool trace %s)\n", ph.trace, ph.trace)
	}
}

// ms formats a latency in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
}

// thousands formats v rounded, with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// thousands1 is thousands with one decimal.
func thousands1(v float64) string {
	whole, frac, _ := strings.Cut(strconv.FormatFloat(v, 'f', 1, 64), ".")
	n, _ := strconv.ParseFloat(whole, 64)
	return thousands(n) + "." + frac
}
