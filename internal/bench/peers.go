package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/segment"
)

// The engines of a side-by-side run, by the names --engines takes.
const (
	EngineCohort   = "cohort"
	EnginePostgres = "postgres"
	EngineDuckDB   = "duckdb"
)

// Engines lists every engine in the order a run takes them.
var Engines = []string{EngineCohort, EnginePostgres, EngineDuckDB}

// PeersOptions configure a side-by-side run.
type PeersOptions struct {
	Data Data
	// Engines are the engines to run (nil: all). A run of some engines can
	// be saved and merged with runs of the others over the same Data
	// (MergePeers): at 10M profiles one session cannot hold all three.
	Engines map[string]bool
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
	// IndexDir, when set, is an index a "cohort-bench segments --keep" run
	// left (persisted as the server does): Cohort's side opens it, as a
	// restart does, instead of loading the data set into memory.
	IndexDir string
	Suite    []Parsed
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

// PeersResult is a whole comparison, or the part of one that some engines
// ran.
type PeersResult struct {
	Data       Data
	Runs       int
	Ran        []string // the engines that ran (EngineCohort, ...)
	Cases      []PeerCase
	Engines    []EngineStats
	Generation time.Duration // one walk of the data, generation alone
	PGURL      string        // where PostgreSQL ran (no password)
	// Where and when each part ran: the machine and its load averages,
	// one line per run merged (filled by the caller).
	Notes []RunNote
}

// RunNote says where one run of some engines was made.
type RunNote struct {
	Engines []string
	Machine string
	Build   string // the binary's version and commit
	LoadAvg string // at the start and the end
}

// Has tells whether the engine ran.
func (r *PeersResult) Has(engine string) bool { return slices.Contains(r.Ran, engine) }

// CheckSizes returns a *SizeMismatchError listing the conditions whose
// sizes differ between the engines that ran, or nil.
func (r *PeersResult) CheckSizes() error {
	var bad []PeerCase
	for _, c := range r.Cases {
		var sizes []uint64
		if r.Has(EngineCohort) {
			sizes = append(sizes, c.CohortSize)
		}
		if r.Has(EnginePostgres) {
			sizes = append(sizes, c.PGSize)
		}
		if r.Has(EngineDuckDB) {
			sizes = append(sizes, c.DuckSize)
		}
		for _, n := range sizes {
			if n != sizes[0] {
				bad = append(bad, c)
				break
			}
		}
	}
	if len(bad) > 0 {
		return &SizeMismatchError{Cases: bad}
	}
	return nil
}

func sameData(a, b Data) bool {
	return a.Profiles == b.Profiles && a.Events == b.Events && a.Seed == b.Seed && a.At().Equal(b.At()) &&
		a.gen().Days == b.gen().Days && a.InOrder == b.InOrder
}

// MergePeers combines runs of the same data set and suite that ran
// different engines into one result, and checks its sizes (the error is
// then a *SizeMismatchError; the result is still returned).
func MergePeers(parts []*PeersResult) (*PeersResult, error) {
	if len(parts) == 0 {
		return nil, errors.New("no results to merge")
	}
	out := &PeersResult{Data: parts[0].Data, Runs: parts[0].Runs, Generation: parts[0].Generation}
	out.Cases = make([]PeerCase, len(parts[0].Cases))
	for i, c := range parts[0].Cases {
		out.Cases[i] = PeerCase{Name: c.Name, Leaves: c.Leaves}
	}
	for k, p := range parts {
		if !sameData(p.Data, out.Data) {
			return nil, fmt.Errorf("result %d is of another data set (%+v, not %+v)", k+1, p.Data, out.Data)
		}
		if len(p.Cases) != len(out.Cases) {
			return nil, fmt.Errorf("result %d has %d conditions, result 1 %d", k+1, len(p.Cases), len(out.Cases))
		}
		for _, e := range p.Ran {
			if out.Has(e) {
				return nil, fmt.Errorf("result %d ran %s again", k+1, e)
			}
			out.Ran = append(out.Ran, e)
		}
		for i, c := range p.Cases {
			o := &out.Cases[i]
			if c.Name != o.Name {
				return nil, fmt.Errorf("result %d: condition %d is %s, in result 1 %s", k+1, i+1, c.Name, o.Name)
			}
			if p.Has(EngineCohort) {
				o.CohortSize, o.Cohort, o.CohortRuns = c.CohortSize, c.Cohort, c.CohortRuns
			}
			if p.Has(EnginePostgres) {
				o.PGSize, o.PG, o.PGRuns, o.PGQuery = c.PGSize, c.PG, c.PGRuns, c.PGQuery
			}
			if p.Has(EngineDuckDB) {
				o.DuckSize, o.Duck, o.DuckRuns, o.DuckQuery = c.DuckSize, c.Duck, c.DuckRuns, c.DuckQuery
			}
		}
		out.Engines = append(out.Engines, p.Engines...)
		if p.PGURL != "" {
			out.PGURL = p.PGURL
		}
		out.Notes = append(out.Notes, p.Notes...)
	}
	return out, out.CheckSizes()
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
	want := func(e string) bool { return o.Engines == nil || o.Engines[e] }
	if want(EngineDuckDB) && o.Dir != "" {
		// Before the data set is generated, not minutes later at DuckDB's turn.
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("duckdb directory: %w", err)
		}
	}
	res = &PeersResult{Data: o.Data, Runs: o.Runs}
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

	// Generation alone, to tell it apart from the engines' load times
	// (unless no engine loads it).
	if want(EnginePostgres) || want(EngineDuckDB) || o.IndexDir == "" {
		t := time.Now()
		if _, err := o.Data.Walk(ctx, o.Batch, Sink{
			Profiles: func(context.Context, []Profile) error { return nil },
			Events:   func(context.Context, []Event, []Patch) error { return nil },
		}); err != nil {
			return nil, err
		}
		res.Generation = time.Since(t)
		fmt.Fprintf(o.Log, "peers: generating the data set alone takes %s\n", res.Generation.Round(time.Millisecond))
	}

	res.Cases = cases
	if want(EngineCohort) {
		if err := runCohortSide(ctx, o, now, cases, res); err != nil {
			return nil, err
		}
		res.Ran = append(res.Ran, EngineCohort)
	}
	if want(EnginePostgres) {
		if err := runPostgresSide(ctx, o, now, cases, referenced, res); err != nil {
			return nil, err
		}
		res.Ran = append(res.Ran, EnginePostgres)
	}
	if want(EngineDuckDB) {
		if err := runDuckSide(ctx, o, now, cases, referenced, res); err != nil {
			return nil, err
		}
		res.Ran = append(res.Ran, EngineDuckDB)
	}
	return res, res.CheckSizes()
}

func runPostgresSide(ctx context.Context, o PeersOptions, now time.Time, cases []PeerCase, referenced map[string]bool, res *PeersResult) (err error) {
	url := o.PGURL
	if url == "" {
		srv, err := StartPostgres(ctx, o.PGTuning, o.Log)
		if err != nil {
			return err
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
		return err
	}
	defer pg.close(ctx)
	if err := runSQLSide(ctx, o, now, pg, cases, referenced, res); err != nil {
		return err
	}
	return pg.drop(ctx)
}

func runDuckSide(ctx context.Context, o PeersOptions, now time.Time, cases []PeerCase, referenced map[string]bool, res *PeersResult) (err error) {
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cohort-duckdb-"); err != nil {
			return fmt.Errorf("duckdb temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	duck, err := openDuck(ctx, dir)
	if err != nil {
		return err
	}
	defer duck.close()
	return runSQLSide(ctx, o, now, duck, cases, referenced, res)
}

func ratio(peer, cohort time.Duration) float64 {
	return float64(peer) / float64(max(cohort, time.Microsecond/10))
}

func runCohortSide(ctx context.Context, o PeersOptions, now time.Time, cases []PeerCase, res *PeersResult) error {
	ix, stats, done, err := openCohort(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	res.Engines = append(res.Engines, stats)
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

// openCohort loads the data set into an index in memory, or opens the
// one kept in o.IndexDir; done closes what it opened.
func openCohort(ctx context.Context, o PeersOptions) (ix *index.Index, st EngineStats, done func(), err error) {
	if o.IndexDir == "" {
		fmt.Fprintf(o.Log, "peers: loading Cohort...\n")
		ix, st, err := LoadCohort(ctx, o.Data, LoadOptions{Batch: o.Batch})
		if err != nil {
			return nil, EngineStats{}, nil, err
		}
		return ix, EngineStats{
			Engine: "Cohort", Version: "in-process index", Load: st.Wall, Memory: int64(st.IndexBytes()),
			Note: fmt.Sprintf("index.Apply %s of it; %.0f B/profile; memory only", st.Apply.Round(time.Millisecond), st.BytesPerProfile()),
		}, func() { ix.Close() }, nil
	}
	fmt.Fprintf(o.Log, "peers: opening Cohort's index in %s...\n", o.IndexDir)
	s, err := ReopenIndexStore(o.IndexDir)
	if err != nil {
		return nil, EngineStats{}, nil, err
	}
	heap0 := HeapInuse()
	t := time.Now()
	if ix, err = s.Open(ctx); err != nil {
		s.Close()
		return nil, EngineStats{}, nil, err
	}
	took, heap := time.Since(t), HeapInuse()-min(heap0, HeapInuse())
	done = func() { ix.Close(); s.Close() }
	return ix, EngineStats{
		Engine: "Cohort", Version: "in-process index, opened from files", Load: took, Memory: int64(heap),
		Note: fmt.Sprintf("index.Open of %s (a segments --keep run); load is the open; memory is the Go heap, the event columns are mapped files; %.0f B/profile",
			o.IndexDir, float64(heap)/float64(max(o.Data.Profiles, 1))),
	}, done, nil
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
