package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/segment"
)

// PeersOptions configure a side-by-side run.
type PeersOptions struct {
	Data Data
	// Runs is the number of timed runs per condition and engine, after
	// one untimed run that also gives the sizes.
	Runs int
	// PGURL is an existing PostgreSQL server to use; empty: start a private
	// one (StartPostgres with PGTuning).
	PGURL    string
	PGTuning PGTuning
	// Dir holds the DuckDB database file; empty: a temporary directory.
	Dir   string
	Batch int
	Suite []Parsed
	// Log receives progress.
	Log io.Writer
}

// EngineStats describes one engine's load.
type EngineStats struct {
	Engine  string
	Version string
	// Load is the wall time of the load: generation streamed into the
	// engine, then index builds and statistics.
	Load time.Duration
	// Memory is what the engine holds in memory for the data (Cohort: the
	// index's heap; DuckDB: its buffer manager's use; PostgreSQL: the
	// shared buffers setting, the most its cache holds itself).
	Memory int64
	// Disk is the on-disk size (0 for Cohort's in-memory index).
	Disk int64
	Note string
}

// PeerCase is one condition on the three engines: sizes, the median of
// the timed runs, and the runs.
type PeerCase struct {
	Name                         string
	Leaves                       int
	CohortSize, PGSize, DuckSize uint64
	Cohort, PG, Duck             time.Duration
	CohortRuns, PGRuns, DuckRuns []time.Duration
	PGQuery, DuckQuery           string
}

// PGRatio is PostgreSQL's median over Cohort's.
func (c PeerCase) PGRatio() float64 { return ratio(c.PG, c.Cohort) }

// DuckRatio is DuckDB's median over Cohort's.
func (c PeerCase) DuckRatio() float64 { return ratio(c.Duck, c.Cohort) }

// PeersResult is a whole comparison.
type PeersResult struct {
	Cases      []PeerCase
	Engines    []EngineStats
	Generation time.Duration // one walk of the data, generation alone
	PGURL      string        // where PostgreSQL ran (no password)
}

// SizeMismatchError lists the conditions whose sizes differ between the
// engines.
type SizeMismatchError struct{ Cases []PeerCase }

func (e *SizeMismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d condition(s) have different sizes on the three engines:", len(e.Cases))
	for _, c := range e.Cases {
		fmt.Fprintf(&b, "\n  %s: Cohort %d, PostgreSQL %d, DuckDB %d", c.Name, c.CohortSize, c.PGSize, c.DuckSize)
	}
	return b.String()
}

// RunPeers loads o.Data into Cohort, PostgreSQL and DuckDB, runs every
// suite condition on the three, and checks that the sizes agree. The
// result holds the timings even when sizes differ; the error is then a
// *SizeMismatchError.
func RunPeers(ctx context.Context, o PeersOptions) (res *PeersResult, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Runs < 1 {
		o.Runs = 1
	}
	if o.Batch < 1 {
		o.Batch = 20000
	}
	if o.Suite == nil {
		if o.Suite, err = ParseSuite(Suite); err != nil {
			return nil, err
		}
	}
	now := o.Data.At()
	res = &PeersResult{}
	referenced := map[string]bool{}
	for _, c := range o.Suite {
		for _, r := range c.Node.SegmentRefs() {
			referenced[r] = true
		}
	}
	cases := make([]PeerCase, len(o.Suite))
	for i, c := range o.Suite {
		cases[i] = PeerCase{Name: c.Name, Leaves: len(c.Node.Leaves())}
	}

	// Generation alone, to tell it apart from the engines' load times.
	t := time.Now()
	if _, err := o.Data.Walk(ctx, o.Batch, Sink{
		Profiles: func(context.Context, []Profile) error { return nil },
		Events:   func(context.Context, []Event, []Patch) error { return nil },
	}); err != nil {
		return nil, err
	}
	res.Generation = time.Since(t)
	fmt.Fprintf(o.Log, "peers: generating the data set alone takes %s\n", res.Generation.Round(time.Millisecond))

	// Cohort.
	if err := runCohortSide(ctx, o, now, cases, res); err != nil {
		return nil, err
	}

	// PostgreSQL.
	url := o.PGURL
	if url == "" {
		srv, err := StartPostgres(ctx, o.PGTuning, o.Log)
		if err != nil {
			return nil, err
		}
		defer func() {
			if serr := srv.Stop(ctx); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
		url = srv.URL
	}
	res.PGURL = redactURL(url)
	pg, err := openPG(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pg.close(ctx)
	if err := runSQLSide(ctx, o, now, pg, cases, referenced, res); err != nil {
		return nil, err
	}
	if err := pg.drop(ctx); err != nil {
		return nil, err
	}

	// DuckDB.
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cohort-duckdb-"); err != nil {
			return nil, fmt.Errorf("duckdb temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	duck, err := openDuck(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer duck.close()
	if err := runSQLSide(ctx, o, now, duck, cases, referenced, res); err != nil {
		return nil, err
	}

	var bad []PeerCase
	for _, c := range cases {
		if c.PGSize != c.CohortSize || c.DuckSize != c.CohortSize {
			bad = append(bad, c)
		}
	}
	res.Cases = cases
	if len(bad) > 0 {
		return res, &SizeMismatchError{Cases: bad}
	}
	return res, nil
}

func ratio(peer, cohort time.Duration) float64 {
	return float64(peer) / float64(max(cohort, time.Microsecond/10))
}

func runCohortSide(ctx context.Context, o PeersOptions, now time.Time, cases []PeerCase, res *PeersResult) error {
	fmt.Fprintf(o.Log, "peers: loading Cohort...\n")
	ix, st, err := LoadCohort(ctx, o.Data, LoadOptions{Batch: o.Batch})
	if err != nil {
		return err
	}
	res.Engines = append(res.Engines, EngineStats{
		Engine: "Cohort", Version: "in-process index", Load: st.Wall, Memory: int64(st.IndexBytes()),
		Note: fmt.Sprintf("index.Apply %s of it; %.0f B/profile; memory only", st.Apply.Round(time.Millisecond), st.BytesPerProfile()),
	})
	refs := Refs{}
	for i, c := range o.Suite {
		runs, size, err := timeRuns(ctx, o.Runs, func() (uint64, error) {
			r, err := segment.Evaluate(ix, c.Node, now, refs.Func(), false)
			if err != nil {
				return 0, err
			}
			refs[c.Name] = r.Members
			return r.Members.GetCardinality(), nil
		})
		if err != nil {
			return fmt.Errorf("cohort: %s: %w", c.Name, err)
		}
		cases[i].CohortSize, cases[i].CohortRuns, cases[i].Cohort = size, runs, Median(runs)
		fmt.Fprintf(o.Log, "peers: Cohort     %-24s %10d  %s\n", c.Name, size, cases[i].Cohort)
	}
	return nil
}

// timeRuns calls f once untimed (its size is the answer), then runs times,
// checking that every run gives the same size.
func timeRuns(ctx context.Context, runs int, f func() (uint64, error)) ([]time.Duration, uint64, error) {
	size, err := f()
	if err != nil {
		return nil, 0, err
	}
	var ds []time.Duration
	for range runs {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		t := time.Now()
		n, err := f()
		ds = append(ds, time.Since(t))
		if err != nil {
			return nil, 0, err
		}
		if n != size {
			return nil, 0, fmt.Errorf("run gave %d, the first run %d", n, size)
		}
	}
	return ds, size, nil
}

// sqlEngine is PostgreSQL or DuckDB behind the same steps.
type sqlEngine interface {
	dialect() Dialect
	name() string
	// load creates the schema and loads d; it returns the engine's stats.
	load(ctx context.Context, d Data, batch int, log io.Writer) (EngineStats, error)
	count(ctx context.Context, query string) (uint64, error)
	exec(ctx context.Context, query string) error
}

func runSQLSide(ctx context.Context, o PeersOptions, now time.Time, e sqlEngine, cases []PeerCase, referenced map[string]bool, res *PeersResult) error {
	fmt.Fprintf(o.Log, "peers: loading %s...\n", e.name())
	st, err := e.load(ctx, o.Data, o.Batch, o.Log)
	if err != nil {
		return fmt.Errorf("%s: load: %w", e.name(), err)
	}
	res.Engines = append(res.Engines, st)
	fmt.Fprintf(o.Log, "peers: %s loaded in %s\n", e.name(), st.Load.Round(time.Millisecond))
	for i, c := range o.Suite {
		q, err := Translate(e.dialect(), c.Node, now)
		if err != nil {
			return fmt.Errorf("%s: translate %s: %w", e.name(), c.Name, err)
		}
		runs, size, err := timeRuns(ctx, o.Runs, func() (uint64, error) { return e.count(ctx, q.Count()) })
		if err != nil {
			return fmt.Errorf("%s: %s: %w\nquery:\n%s", e.name(), c.Name, err, q.Count())
		}
		if referenced[c.Name] {
			if err := e.exec(ctx, q.Insert(c.Name)); err != nil {
				return fmt.Errorf("%s: store the members of %s: %w", e.name(), c.Name, err)
			}
		}
		if e.dialect() == Postgres {
			cases[i].PGSize, cases[i].PGRuns, cases[i].PG, cases[i].PGQuery = size, runs, Median(runs), q.Count()
		} else {
			cases[i].DuckSize, cases[i].DuckRuns, cases[i].Duck, cases[i].DuckQuery = size, runs, Median(runs), q.Count()
		}
		fmt.Fprintf(o.Log, "peers: %-10s %-24s %10d  %s\n", e.name(), c.Name, size, Median(runs))
	}
	return nil
}

// redactURL drops a password from a connection URL for printing.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if user, _, ok := strings.Cut(cred, ":"); ok {
		return u[:scheme+3] + user + ":***" + u[at:]
	}
	return u
}
