package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const importUsage = `Usage: cohort import [flags] FILE...

Loads files into Cohort through the ingestion path, either through a running
server (--server URL --write-key KEY) or straight into a data directory that
no server has open (--data DIR). Give exactly one of --server and --data.

  *.ndjson, *.jsonl   one Segment message per line (any type; "type" required)
  *.csv               a header row, then one profile per row: the id column
                      (--id-column, default userId; an "anonymousId" column is
                      used too) names the profile, every other non-empty cell is
                      a trait (numbers and true/false are typed, the rest text)
  *.gz                any of the above, gzip-compressed
  -                   NDJSON from standard input (as "cohort gen" writes it)

Messages without a messageId get one derived from the file name, line and
content, so importing the same file again stores nothing twice. Rejected
messages are summarised at the end and kept in the dead-letter log; they do
not make the command fail, a file that cannot be read does.

--data refuses a directory that holds no Cohort store (a typo would
otherwise make a new, empty one) unless --create is given.

Environment:
  COHORT_WRITE_KEY   the write key, with --server, when --write-key is not given
  COHORT_WRITE_KEY, COHORT_API_KEY, COHORT_ADMIN_KEY
                     with --data --create, the new store's keys (as for serve)

Examples:
  cohort gen --profiles 2000 | cohort import --data ./cohort-data --create -
  cohort import --server http://127.0.0.1:8080 --write-key KEY events.ndjson.gz users.csv

Flags:
`

// importConfig is a parsed `cohort import` command line, plus the knobs
// tests turn.
type importConfig struct {
	server    string // base URL of a running server
	writeKey  string
	data      string // data directory
	cfgPath   string // server configuration, for its limits (with --data)
	workspace string
	batch     int
	idColumn  string
	files     []string
	create    bool // --create: --data may make a new store

	// Not flags.
	stdin         io.Reader // the file "-"
	client        *http.Client
	maxAttempts   int           // HTTP attempts per request before giving up
	retryBase     time.Duration // first backoff
	retryMax      time.Duration // longest backoff (Retry-After may ask for more)
	progressEvery time.Duration // a progress line this often when stderr is no terminal
	now           func() time.Time
}

func importCmd(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseImportArgs(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = runImport(ctx, cfg, stdout, stderr)
	return err
}

// parseImportArgs parses the command line. Flags may come before or after
// the files; everything after "--" is a file.
func parseImportArgs(args []string, stderr io.Writer) (importConfig, error) {
	c := importConfig{
		maxAttempts:   10,
		retryBase:     500 * time.Millisecond,
		retryMax:      30 * time.Second,
		progressEvery: 5 * time.Second,
		now:           time.Now,
		stdin:         os.Stdin,
	}
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.server, "server", "", "base URL of a running Cohort server, e.g. http://127.0.0.1:8080")
	fs.StringVar(&c.writeKey, "write-key", "", "the workspace's write key, with --server (default $COHORT_WRITE_KEY)")
	fs.StringVar(&c.data, "data", "", "data directory to import into directly (no server may have it open)")
	fs.BoolVar(&c.create, "create", false, "with --data: create a new data directory when DIR holds none (else that is an error)")
	fs.StringVar(&c.cfgPath, "config", "", "the server's YAML configuration, for its limits, with --data")
	fs.StringVar(&c.workspace, "workspace", "default", "workspace to import into, with --data (with --server the write key decides)")
	fs.IntVar(&c.batch, "batch", 500, "messages per batch")
	fs.StringVar(&c.idColumn, "id-column", "userId", "CSV column holding the profile's userId")

	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return c, err
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			c.files = append(c.files, left...)
			break
		}
		c.files = append(c.files, left[0])
		rest = left[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	usageErr := func(format string, a ...any) (importConfig, error) {
		return c, fmt.Errorf(format+" (cohort import -h for help)", a...)
	}
	switch {
	case c.server == "" && c.data == "":
		return usageErr("give --server URL or --data DIR")
	case c.server != "" && c.data != "":
		return usageErr("give either --server or --data, not both")
	case len(c.files) == 0:
		return usageErr("no files to import")
	case c.batch < 1:
		return usageErr("--batch %d: want at least 1", c.batch)
	case c.idColumn == "":
		return usageErr("--id-column must not be empty")
	}
	if c.server != "" {
		if set["workspace"] {
			return usageErr("--workspace applies to --data; with --server the write key decides the workspace")
		}
		if set["config"] {
			return usageErr("--config applies to --data; with --server the server's own configuration applies")
		}
		u, err := url.Parse(c.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErr("--server %q: want a URL like http://127.0.0.1:8080", c.server)
		}
		if c.writeKey == "" {
			c.writeKey = os.Getenv("COHORT_WRITE_KEY")
		}
		if c.writeKey == "" {
			return usageErr("--server needs --write-key KEY (or COHORT_WRITE_KEY)")
		}
	} else if set["write-key"] {
		return usageErr("--write-key applies to --server")
	}
	if set["create"] && c.server != "" {
		return usageErr("--create applies to --data")
	}
	for _, f := range c.files {
		if _, _, err := fileKind(f); err != nil {
			return usageErr("%v", err)
		}
	}
	return c, nil
}

// File kinds.
const (
	kindNDJSON = "ndjson"
	kindCSV    = "csv"
)

// fileKind tells a file's format and compression from its name.
func fileKind(path string) (kind string, gz bool, err error) {
	if path == "-" {
		return kindNDJSON, false, nil
	}
	name := strings.ToLower(filepath.Base(path))
	if n, ok := strings.CutSuffix(name, ".gz"); ok {
		name, gz = n, true
	}
	switch filepath.Ext(name) {
	case ".ndjson", ".jsonl":
		return kindNDJSON, gz, nil
	case ".csv":
		return kindCSV, gz, nil
	}
	return "", false, fmt.Errorf("%s: unknown file type: want .ndjson, .jsonl or .csv, optionally followed by .gz", path)
}

// runImport imports cfg.files and prints the summary on stdout. It returns
// an error when a file could not be read or the import had to stop; rejected
// messages alone are no error.
func runImport(ctx context.Context, cfg importConfig, stdout, stderr io.Writer) (*importSummary, error) {
	start := cfg.now()
	var sink importSink
	var err error
	if cfg.server != "" {
		sink = newHTTPSink(cfg)
	} else {
		sink, err = openDataSink(cfg, stdout, stderr)
		if err != nil {
			return nil, err
		}
	}

	files := make([]*inputFile, len(cfg.files))
	var total int64
	for i, p := range cfg.files {
		f := &inputFile{path: p}
		f.kind, f.gz, _ = fileKind(p) // checked when parsing
		f.idName = filepath.Base(p)
		if f.gz {
			f.idName = f.idName[:len(f.idName)-len(".gz")]
		}
		if p == "-" {
			f.idName = "stdin"
		} else if fi, err := os.Stat(p); err != nil {
			f.statErr = readErr(p, err)
		} else if fi.IsDir() {
			f.statErr = fmt.Errorf("read %s: is a directory", p)
		} else {
			f.size = fi.Size()
			total += f.size
		}
		files[i] = f
	}

	sum := newImportSummary(sink.describe())
	sum.Files = len(files)
	prog := newProgress(stderr, total, cfg.progressEvery)
	sink.setNotifier(prog.note)
	im := &importer{
		sink:     sink,
		batch:    cfg.batch,
		idColumn: cfg.idColumn,
		stdin:    cfg.stdin,
		sum:      sum,
		prog:     prog,
	}
	im.maxMsg, im.maxBody = sink.limits()
	im.maxBody -= len(`{"batch":[]}`)

	prog.start()
	var stopErr error
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			stopErr = err
			break
		}
		if f.statErr != nil {
			sum.fileFailed(f.path, f.statErr)
			continue
		}
		prog.setFile(f.path)
		err := im.importFile(ctx, f)
		var se *sinkError
		switch {
		case err == nil:
			sum.FilesRead++
			continue
		case errors.As(err, &se):
			stopErr = se.err
		case ctx.Err() != nil:
			stopErr = ctx.Err()
		default:
			sum.fileFailed(f.path, err)
			continue
		}
		break
	}
	if stopErr == nil {
		var se *sinkError
		if err := im.flush(ctx); errors.As(err, &se) {
			stopErr = se.err
		}
	}
	prog.finish()
	if err := sink.close(); err != nil && stopErr == nil {
		stopErr = err
	}
	if errors.Is(stopErr, context.Canceled) {
		stopErr = errors.New("interrupted")
	}
	sum.Stopped = stopErr
	sum.Bytes = prog.bytes.Load()
	sum.Retries = sink.retries()
	sum.Elapsed = cfg.now().Sub(start)
	sum.print(stdout)

	switch {
	case stopErr != nil:
		return sum, fmt.Errorf("import stopped: %w", stopErr)
	case len(sum.FileErrors) > 0:
		return sum, fmt.Errorf("%d of %d files could not be read (see the summary)", len(sum.FileErrors), sum.Files)
	}
	return sum, nil
}

// readErr words a failure to open or stat a file as one to read it.
func readErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("read %s: %w", path, err)
}
