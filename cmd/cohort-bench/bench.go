package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"syscall"

	"github.com/cohortdb/cohort/internal/bench"
)

const benchUsage = `Usage:
  cohort-bench ingest [flags]     HTTP ingestion throughput and latency
  cohort-bench segments [flags]   segment evaluation on an in-memory index
  cohort-bench realtime [flags]   real-time membership changes under load
  cohort-bench peers [flags]      the same conditions on PostgreSQL and DuckDB
  cohort-bench restart [flags]    start after SIGKILL mid-ingest: time to healthy, nothing lost

cohort-bench SUBCOMMAND -h lists its flags, environment and an example.
Results and the commands that made them: BENCHMARKS.md.

Example:
  go run ./cmd/cohort-bench segments --profiles 20000 --runs 3
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
		"restart":  benchRestart,
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
