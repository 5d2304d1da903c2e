package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cohortdb/cohort/internal/bench"
)

const benchRealtimeUsage = `Usage:
  cohort-bench realtime [--segments 200] [--profiles 100000] [--rate 50000] [--duration 30s]
                        [--timers 1000000] [--runs 1] [--cpuprofile FILE] [flags]

Real-time membership under load. Starts a server in this process (default
configuration, temporary data directory, 127.0.0.1:0), loads --profiles
identifies and a history of events, creates --segments live segments of
mixed kinds with POST /api/segments, then pre-loads heartbeat events so that
about --timers (profile, segment) timers are pending, some of them due
during the measured window. Then it sends messages at --rate over
POST /v1/batch (open loop) while a client reads GET /api/changes (SSE).

Reports: messages/s sustained, request latency, accept-to-change latency
from the server's cohort_accept_to_change_seconds histogram and end to end
(request sent → change read from the stream), timers fired and their
lateness (cohort_timer_lateness_seconds, and due → exit read from the
stream), CPU, and the machine. With --runs N it repeats the run and prints
the median of every key figure.

Environment:
  GOMEMLIMIT, GOMAXPROCS   the Go runtime's

Example:
  cohort-bench realtime --profiles 20000 --timers 100000 --rate 20000 --duration 15s
`

func parseRealtimeFlags(args []string, stderr io.Writer) (bench.RealtimeOptions, int, error) {
	o := bench.DefaultRealtimeOptions()
	runs := 1
	fs := flag.NewFlagSet("bench realtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchRealtimeUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.Segments, "segments", o.Segments, "live segments (mixed kinds, timer segments included)")
	fs.IntVar(&o.Profiles, "profiles", o.Profiles, "profiles loaded by identify before the run")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "messages/s sent during the run, on a fixed schedule")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "measured window")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before the measured window")
	fs.IntVar(&o.Timers, "timers", o.Timers, "(profile, segment) timers pending when the run starts")
	fs.IntVar(&o.TimersDue, "timers-due", o.TimersDue, "how many of the timers fall due during the measured window (-1: a fifth of --timers)")
	fs.IntVar(&o.History, "history", o.History, "events with past timestamps loaded before the segments are created (-1: 5 per profile)")
	fs.IntVar(&o.Clients, "clients", o.Clients, "sending goroutines")
	fs.IntVar(&o.Batch, "batch", o.Batch, "messages per request")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "workload seed")
	fs.BoolVar(&o.Uniform, "uniform-users", false, "draw every message's user uniformly (default: internal/gen's mix, half Zipf(1.1) with heavy users, half uniform)")
	fs.IntVar(&runs, "runs", runs, "repeat the whole run this many times and print the medians")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured window to `FILE` (server and load generator: one process; goroutines are labelled role=server|load-generator|stream-reader)")
	if err := fs.Parse(args); err != nil {
		return o, 0, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if runs < 1 {
		errs = append(errs, errors.New("--runs must be at least 1"))
	}
	errs = append(errs, o.Validate())
	return o, runs, errors.Join(errs...)
}

func benchRealtime(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, runs, err := parseRealtimeFlags(args, stderr)
	if err != nil {
		return err
	}
	o.Progress = stderr
	o.Logger = newLogger(stderr, "warn")
	command := "cohort-bench realtime " + strings.Join(args, " ")
	var results []*bench.RealtimeResult
	for i := range runs {
		ro := o
		if runs > 1 {
			fmt.Fprintf(stderr, "bench realtime: run %d of %d\n", i+1, runs)
			if ro.CPUProfile != "" {
				ro.CPUProfile = fmt.Sprintf("%s.%d", o.CPUProfile, i+1)
			}
		}
		res, err := bench.RunRealtime(ctx, ro)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		res.Print(stdout, strings.TrimSpace(command))
		results = append(results, res)
	}
	bench.PrintMedians(stdout, results)
	return nil
}
