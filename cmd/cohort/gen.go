package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cohortdb/cohort/internal/demo"
)

const genUsage = `Usage: cohort gen [flags]

Writes a deterministic demo data set: a realistic e-commerce and media
workspace (identifies with typed traits including dates and locations,
anonymous sessions that later identify, aliases, tracks and page calls with
nested properties, a few type conflicts, bot-like users, and a few
deliberately bad lines that an import reports as rejected).

Without --out the NDJSON Segment messages go to stdout, to stream into
"cohort import -". With --out DIR it writes DIR/events.ndjson and
DIR/profiles.csv (CRM-style profiles, one per row). A summary goes to
stderr. The same flags always give the same bytes; events fall in the --days
before --now (default: the start of the current UTC day).

Environment: none.

Examples:
  cohort gen --profiles 2000 | cohort import --data ./cohort-data --create -
  cohort gen --profiles 100000 --out ./demo && cohort import --server http://127.0.0.1:8080 demo/*

Flags:
`

// genConfig is a parsed `cohort gen` command line.
type genConfig struct {
	demo.Config
	out string
}

func parseGenArgs(args []string, stderr io.Writer, now time.Time) (genConfig, error) {
	var c genConfig
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), genUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&c.Profiles, "profiles", 1000, "profiles to generate")
	fs.IntVar(&c.Events, "events", 0, fmt.Sprintf("event messages to generate (default %d per profile)", demo.EventsPerProfile))
	fs.Uint64Var(&c.Seed, "seed", 1, "generator seed")
	fs.IntVar(&c.Days, "days", 30, "length of the period the events fall in, in days")
	nowFlag := fs.String("now", "", "end of the period, RFC 3339 (default: the start of the current UTC day)")
	fs.StringVar(&c.out, "out", "", "directory to write events.ndjson and profiles.csv to (default: NDJSON on stdout)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (cohort gen -h for help)", fs.Arg(0))
	}
	c.Now = now.UTC().Truncate(24 * time.Hour)
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return c, fmt.Errorf("--now %q: want an RFC 3339 time like 2026-06-01T00:00:00Z", *nowFlag)
		}
		c.Now = t
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w (cohort gen -h for help)", err)
	}
	return c, nil
}

func genCmd(args []string, stdout, stderr io.Writer) error {
	c, err := parseGenArgs(args, stderr, time.Now())
	if err != nil {
		return err
	}
	if c.out == "" {
		st, err := demo.WriteNDJSON(stdout, c.Config)
		if err != nil {
			return err
		}
		printGenStats(stderr, c, st)
		return nil
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	st, err := writeGenFile(filepath.Join(c.out, "events.ndjson"), func(w io.Writer) (demo.Stats, error) {
		return demo.WriteNDJSON(w, c.Config)
	})
	if err != nil {
		return err
	}
	cst, err := writeGenFile(filepath.Join(c.out, "profiles.csv"), func(w io.Writer) (demo.Stats, error) {
		return demo.WriteCSV(w, c.Config)
	})
	if err != nil {
		return err
	}
	st.Profiles = cst.Profiles
	printGenStats(stderr, c, st)
	return nil
}

func writeGenFile(path string, write func(io.Writer) (demo.Stats, error)) (demo.Stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return demo.Stats{}, err
	}
	st, err := write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, errors.Join(fmt.Errorf("write %s: %w", path, err), os.Remove(path))
	}
	return st, nil
}

func printGenStats(w io.Writer, c genConfig, st demo.Stats) {
	fmt.Fprintf(w, "cohort gen: %d lines: %d identifies, %d aliases, %d events (%d bot-like users), %d deliberately bad lines; seed %d, --now %s",
		st.Lines, st.Identifies, st.Aliases, st.Events, st.Bots, st.Bad, c.Seed, c.Now.Format(time.RFC3339))
	if c.out != "" {
		fmt.Fprintf(w, "; %d CSV profiles; in %s", st.Profiles, c.out)
	}
	fmt.Fprintln(w)
}
