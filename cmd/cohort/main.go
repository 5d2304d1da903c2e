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
	"runtime/debug"
	"syscall"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

const usage = `cohort — real-time audience segmentation

Usage:
  cohort serve [--http 127.0.0.1:8080] [--data ./cohort-data] [--config cohort.yaml]
  cohort import [--server URL --write-key KEY | --data DIR] [--workspace NAME] FILE...
  cohort bench ingest [flags]     (cohort bench ingest -h for the flags)
  cohort version
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
	case "bench":
		err = benchCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "cohort", versionString())
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

const version = "0.1.0"

// versionString is the version and, when the binary was built from a git
// checkout, the commit it was built from ("+dirty" with local changes).
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	rev = rev[:min(12, len(rev))]
	if dirty {
		rev += "+dirty"
	}
	return version + " (" + rev + ")"
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
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return cfg, err
		}
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	if *data != "" {
		cfg.Data = *data
	}
	cfg.ApplyEnv(os.Getenv)
	return cfg, cfg.Validate()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	srv, err := server.Open(cfg, server.Options{Logger: log, Out: stdout})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	serveErr := srv.Serve(ctx)
	closeErr := srv.Close()
	if serveErr != nil {
		return serveErr
	}
	if closeErr != nil {
		return closeErr
	}
	log.Info("stopped")
	return nil
}
