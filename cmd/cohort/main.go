// Command cohort is Cohort's single binary: the server, and the tools that
// feed and measure it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cohortdb/cohort/internal/buildinfo"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

const usage = `cohort — real-time audience segmentation

Usage:
  cohort serve [--http ADDR] [--data DIR] [--config FILE]
                        run the server (HTTP API, embedded store)
  cohort import [--server URL --write-key KEY | --data DIR [--create]] FILE...
                        load NDJSON Segment messages and CSV profiles ("-": stdin)
  cohort gen [--profiles N] [--events N] [--seed N] [--now TIME] [--out DIR]
                        write a deterministic demo data set
  cohort version        print the version
  cohort help           this text

cohort COMMAND -h lists the command's flags, environment variables and an
example. The benchmarks are a separate binary: go run ./cmd/cohort-bench -h
(cohort-bench ingest|segments|realtime|peers).

Environment:
  COHORT_WRITE_KEY, COHORT_API_KEY, COHORT_ADMIN_KEY
                        the default workspace's keys (serve), the write key (import)

Example:
  cohort gen --profiles 2000 | cohort import --data ./cohort-data --create -
  cohort serve --data ./cohort-data
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "import":
		err = importCmd(args[1:], stdout, stderr)
	case "gen":
		err = genCmd(args[1:], stdout, stderr)
	case "bench":
		fmt.Fprintln(stderr, "cohort: the benchmarks are a separate binary: go run ./cmd/cohort-bench "+strings.Join(args[1:], " "))
		return 2
	case "version":
		fmt.Fprintln(stdout, "cohort", buildinfo.String())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "cohort: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cohort %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// loadConfig reads --config (if any) and applies flags and environment.
func loadConfig(fs *flag.FlagSet, args []string) (config.Config, error) {
	httpAddr := fs.String("http", "", "listen address (default 127.0.0.1:8080)")
	data := fs.String("data", "", "data directory (default ./cohort-data)")
	cfgPath := fs.String("config", "", "YAML configuration file")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	cfg := config.Default()
	var loadErr error
	if *cfgPath != "" {
		// A file's problems are joined with Validate's: all at once.
		cfg, loadErr = config.Load(*cfgPath)
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	if *data != "" {
		cfg.Data = *data
	}
	cfg.ApplyEnv(os.Getenv)
	return cfg, config.Check(&cfg, loadErr)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

const serveUsage = `Usage: cohort serve [flags]

Runs the server: the Segment ingestion routes (/v1/*), the management and
query API (/api/*), the change stream, /healthz, /metrics and
/openapi.yaml, with the embedded store under --data. On first start the
workspace "default" is created and the keys not given are generated, stored
and printed once. SIGTERM or Ctrl-C drains and exits 0.

Environment:
  COHORT_WRITE_KEY   the default workspace's write key (ingestion only)
  COHORT_API_KEY     its api key (management and query)
  COHORT_ADMIN_KEY   the admin key (creates workspaces, lists and rotates keys)
  A key given here that the store does not hold yet is added to it (and
  logged); keys already stored stay valid until revoked (docs/keys.md).

Configuration: --config FILE is YAML; every key is in docs/config.md. Flags
and the environment override the file.

Example:
  COHORT_API_KEY=my-api-key-1 cohort serve --http 127.0.0.1:8080 --data ./cohort-data

Flags:
`

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	// Signals are caught before loading starts: SIGTERM while loading
	// stops the load and exits 0.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := server.Run(ctx, cfg, server.Options{Logger: log, Out: stdout}); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
