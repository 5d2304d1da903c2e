package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets of issue 4 on a 2-core machine.
const (
	rtTargetRate = 50000
	rtTargetP50  = 5 * time.Millisecond
	rtTargetP99  = 50 * time.Millisecond
	rtTargetLate = time.Second
)

func rtMS(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// rtSecMS formats seconds (a histogram value) in milliseconds.
func rtSecMS(s float64) string {
	switch {
	case math.IsNaN(s):
		return "n/a"
	case math.IsInf(s, 1):
		return "> 16 s"
	}
	return strconv.FormatFloat(s*1e3, 'f', 2, 64) + " ms"
}

func rtN(v float64) string {
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

func (d RTDist) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%s samples)",
		rtMS(d.P50), rtMS(d.P90), rtMS(d.P99), rtMS(d.P999), rtMS(d.Max), rtN(float64(d.N)))
}

func (h RTHist) String() string {
	if h.Count == 0 {
		return "no observations"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max ≤ %s  mean %s  (%s observations)",
		rtSecMS(h.Quantile(.5)), rtSecMS(h.Quantile(.9)), rtSecMS(h.Quantile(.99)), rtSecMS(h.MaxBound()),
		rtSecMS(h.Sum/h.Count), rtN(h.Count))
}

func rtMet(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// Rate is the sustained rate in messages/s.
func (r *RealtimeResult) Rate() float64 { return float64(r.Messages) / r.Window.Seconds() }

// Print writes the report of one run.
func (r *RealtimeResult) Print(out io.Writer, command string) {
	o := r.Opts
	p := func(f string, a ...any) { fmt.Fprintf(out, f+"\n", a...) }
	p("cohort-bench realtime")
	p("  command      %s", command)
	p("  machine      %s", r.Machine)
	if r.LoadAvg != "" {
		p("               load average %s before the run", r.LoadAvg)
	}
	p("  server       in this process (pprof label role=server), default configuration (WAL fsync before every answer), temporary data directory")
	p("  setup        %s profiles by identify in %s; %s history events (last 30 days) in %s",
		rtN(float64(o.Profiles)), r.IdentifyLoad.Round(time.Millisecond), rtN(float64(r.HistoryEvents)), r.HistoryLoad.Round(time.Millisecond))
	kinds := slices.Sorted(maps.Keys(r.SegmentKinds))
	var ks []string
	for _, k := range kinds {
		ks = append(ks, fmt.Sprintf("%d %s", r.SegmentKinds[k], k))
	}
	sizes := slices.Clone(r.SegmentSizes)
	slices.Sort(sizes)
	var empty int
	for _, s := range sizes {
		if s == 0 {
			empty++
		}
	}
	p("               %d live segments created by POST /api/segments and built in %s:", len(r.SegmentSizes), r.SegmentCreate.Round(time.Millisecond))
	p("                 %s", strings.Join(ks, ", "))
	if len(sizes) > 0 {
		p("                 members at creation: median %s, max %s, %d empty (timer segments are empty until their heartbeats)",
			rtN(float64(sizes[len(sizes)/2])), rtN(float64(sizes[len(sizes)-1])), empty)
	}
	p("  timers       %s pending from the mixed segments, then %s heartbeat messages in %s: %s pending at the start of the window, %s at its end",
		rtN(float64(r.PendingBase)), rtN(float64(r.TimerEvents)), r.TimerLoad.Round(time.Millisecond), rtN(float64(r.PendingStart)), rtN(float64(r.PendingEnd)))
	p("               %s of them planned due inside the measured window (exits with reason time expected)", rtN(float64(r.DueInWindow)))
	if r.PreloadOverrun > 0 {
		p("               (the preload ended %s after the planned start: some due times fell in the warm-up)", r.PreloadOverrun.Round(time.Millisecond))
	}
	p("  load         %s messages/s offered on a fixed schedule (open loop), %d per POST /v1/batch, %d clients; %.0f%% track events, %.0f%% identify (trait changes)",
		rtN(o.Rate), o.Batch, o.Clients, 100*r.TrackShare, 100-100*r.TrackShare)
	users := "half Zipf(1.1), half uniform over the profiles (internal/gen's mix)"
	if o.Uniform {
		users = "uniform over the profiles (--uniform-users)"
	}
	p("               users: %s; %s warm-up, then %s measured", users, o.Warmup, o.Duration)
	p("")
	verdict := fmt.Sprintf("offered %s, below the target's %s: not a test of the target", rtN(o.Rate), rtN(rtTargetRate))
	if o.Rate >= rtTargetRate {
		verdict = "target " + rtN(rtTargetRate) + ": " + rtMet(r.Rate() >= 0.99*rtTargetRate)
	}
	p("  throughput   %s messages/s sustained (accepted and answered within the window; %s)", rtN(r.Rate()), verdict)
	p("  requests     %s", r.RequestLatency)
	p("               latency of POST /v1/batch from its scheduled send time (durable when answered)")
	if r.LateSends > 0 {
		p("  late sends   %d requests left more than 1 ms after their scheduled time (worst %s): all clients busy or starved of CPU", r.LateSends, rtMS(r.MaxLate))
	} else {
		p("  late sends   none")
	}
	if len(r.Failures) == 0 {
		p("  errors       none")
	} else {
		for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
			p("  errors       %d %s, e.g. %s", r.Failures[k], k, r.FailureExample[k])
		}
	}
	p("")
	a := r.ServerA2C
	p("  accept-to-change (targets p50 < %s, p99 < %s)", rtMS(rtTargetP50), rtMS(rtTargetP99))
	p("    server histogram  %s", a)
	p("                      cohort_accept_to_change_seconds, /metrics diffed over the window, interpolated within buckets;")
	p("                      one observation per commit group: its first message's receipt → its membership update (before commit and fsync)")
	if a.Count > 0 {
		p("                      p50 %s, p99 %s", rtMet(a.Quantile(.5) < rtTargetP50.Seconds()), rtMet(a.Quantile(.99) < rtTargetP99.Seconds()))
	}
	p("    end to end        %s", r.E2E)
	p("                      request sent → the change read from GET /api/changes (SSE, durable changes only), for every event/trait change of the window,")
	p("                      matched to the latest request carrying its user sent before the change's \"at\" (%d unmatched)", r.E2EUnmatched)
	if r.E2E.N > 0 {
		p("                      p50 %s, p99 %s", rtMet(r.E2E.P50 < rtTargetP50), rtMet(r.E2E.P99 < rtTargetP99))
	}
	p("    send → \"at\"       %s", r.E2EServer)
	p("                      the same changes, to the time the engine stamped on them (no fsync, no stream)")
	var rs []string
	total := 0
	for _, k := range slices.Sorted(maps.Keys(r.ChangesByReason)) {
		rs = append(rs, fmt.Sprintf("%s %s", k, rtN(float64(r.ChangesByReason[k]))))
		total += r.ChangesByReason[k]
	}
	p("  changes      %s in the window (%s/s): %s", rtN(float64(total)), rtN(float64(total)/r.Window.Seconds()), strings.Join(rs, ", "))
	p("    stream lag        %s", r.StreamLag)
	p("                      the change's \"at\" → read from the stream (group fsync + store scan + SSE)")
	p("")
	p("  timers (target: exits within 1 s of their due time, ~%s pending)", rtN(float64(o.Timers)))
	l := r.Lateness
	p("    fired             %s timers fired in the window (count of cohort_timer_lateness_seconds)", rtN(l.Count))
	p("    lateness          %s", l)
	p("                      server histogram: the firing tick's time − due (ticks every 200 ms)")
	p("    exits             %s of %s planned due in the window were read as exit/time from the stream (%s reason-time exits and %s enters in all)",
		rtN(float64(r.TimeExitsSeen)), rtN(float64(r.DueInWindow)), rtN(float64(r.TimeExitsAll)), rtN(float64(r.TimeEntersAll)))
	p("    due → read        %s", r.TimeE2E)
	p("    due → \"at\"        %s", r.TimeAt)
	p("                      %d exits read more than 1 s after due: %s", r.TimeExitsLate1,
		rtMet(r.TimeExitsLate1 == 0 && r.DueInWindow > 0 && r.TimeExitsSeen >= r.DueInWindow*99/100))
	p("")
	p("  resources over the window")
	p("    CPU               %.2f cores used by this process (server and load generator), of %d; machine %.2f busy (%.2f by other processes), iowait %.2f, steal %.2f",
		r.ProcCPU, r.Machine.NumCPU, r.MachineCPU, max(0, r.MachineCPU-r.ProcCPU), r.IOWait, r.Steal)
	if r.Groups > 0 {
		p("    applier           %s commit groups (%.0f messages each), busy %.0f%% of the window", rtN(r.Groups), r.GroupMsgs/r.Groups, 100*r.ApplyBusy)
	}
	if r.Syncs > 0 {
		p("    syncer            %s WAL fsyncs (%.1f groups each), busy %.0f%% of the window", rtN(r.Syncs), r.Groups/r.Syncs, 100*r.SyncBusy)
	}
	p("    memory            %.0f MB resident at the end; %s GC cycles in the window", r.RSS/1e6, rtN(r.GCCycles))
	if r.Profile != "" {
		p("    profile           CPU profile of the window in %s (go tool pprof -top -tagfocus role=server %s)", r.Profile, r.Profile)
	}
}

// PrintMedians writes the key figures of several runs and their medians.
func PrintMedians(out io.Writer, runs []*RealtimeResult) {
	if len(runs) < 2 {
		return
	}
	p := func(f string, a ...any) { fmt.Fprintf(out, f+"\n", a...) }
	p("")
	p("median of %d runs", len(runs))
	row := func(name string, f func(r *RealtimeResult) float64, format func(float64) string) {
		var xs []float64
		var cells []string
		for _, r := range runs {
			v := f(r)
			xs = append(xs, v)
			cells = append(cells, format(v))
		}
		p("  %-34s %-14s  (runs: %s)", name, format(rtMedian(xs)), strings.Join(cells, ", "))
	}
	num := func(v float64) string { return rtN(v) }
	msF := func(v float64) string { return rtSecMS(v) }
	dur := func(d time.Duration) float64 { return d.Seconds() }
	row("messages/s sustained", func(r *RealtimeResult) float64 { return r.Rate() }, num)
	row("request p50", func(r *RealtimeResult) float64 { return dur(r.RequestLatency.P50) }, msF)
	row("request p99", func(r *RealtimeResult) float64 { return dur(r.RequestLatency.P99) }, msF)
	row("accept-to-change server p50", func(r *RealtimeResult) float64 { return r.ServerA2C.Quantile(.5) }, msF)
	row("accept-to-change server p90", func(r *RealtimeResult) float64 { return r.ServerA2C.Quantile(.9) }, msF)
	row("accept-to-change server p99", func(r *RealtimeResult) float64 { return r.ServerA2C.Quantile(.99) }, msF)
	row("accept-to-change server max ≤", func(r *RealtimeResult) float64 { return r.ServerA2C.MaxBound() }, msF)
	row("accept-to-change end-to-end p50", func(r *RealtimeResult) float64 { return dur(r.E2E.P50) }, msF)
	row("accept-to-change end-to-end p90", func(r *RealtimeResult) float64 { return dur(r.E2E.P90) }, msF)
	row("accept-to-change end-to-end p99", func(r *RealtimeResult) float64 { return dur(r.E2E.P99) }, msF)
	row("accept-to-change end-to-end max", func(r *RealtimeResult) float64 { return dur(r.E2E.Max) }, msF)
	row("send → \"at\" p50", func(r *RealtimeResult) float64 { return dur(r.E2EServer.P50) }, msF)
	row("send → \"at\" p99", func(r *RealtimeResult) float64 { return dur(r.E2EServer.P99) }, msF)
	row("changes/s", func(r *RealtimeResult) float64 {
		t := 0
		for _, n := range r.ChangesByReason {
			t += n
		}
		return float64(t) / r.Window.Seconds()
	}, num)
	row("timers pending at start", func(r *RealtimeResult) float64 { return float64(r.PendingStart) }, num)
	row("timers fired in the window", func(r *RealtimeResult) float64 { return r.Lateness.Count }, num)
	row("timer lateness server p50", func(r *RealtimeResult) float64 { return r.Lateness.Quantile(.5) }, msF)
	row("timer lateness server p99", func(r *RealtimeResult) float64 { return r.Lateness.Quantile(.99) }, msF)
	row("timer lateness server max ≤", func(r *RealtimeResult) float64 { return r.Lateness.MaxBound() }, msF)
	row("time exits seen / due", func(r *RealtimeResult) float64 {
		if r.DueInWindow == 0 {
			return math.NaN()
		}
		return float64(r.TimeExitsSeen) / float64(r.DueInWindow)
	}, func(v float64) string { return strconv.FormatFloat(100*v, 'f', 2, 64) + "%" })
	row("due → exit read p50", func(r *RealtimeResult) float64 { return dur(r.TimeE2E.P50) }, msF)
	row("due → exit read p99", func(r *RealtimeResult) float64 { return dur(r.TimeE2E.P99) }, msF)
	row("due → exit read max", func(r *RealtimeResult) float64 { return dur(r.TimeE2E.Max) }, msF)
	row("process CPU (cores)", func(r *RealtimeResult) float64 { return r.ProcCPU }, func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) })
	row("other processes' CPU (cores)", func(r *RealtimeResult) float64 { return max(0, r.MachineCPU-r.ProcCPU) }, func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) })
}
