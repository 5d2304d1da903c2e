package segment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/store"
)

var genNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// world is a workspace loaded through the real ingestion path, with its
// index kept current by the change feed.
type world struct {
	st      *store.Store
	g       *ingest.Ingester
	ws      *ingest.Workspace
	ix      *index.Index
	ckptErr error // the first failed checkpoint
}

func newWorld(t testing.TB) *world { return newWorldWith(t, "") }

// newWorldWith is newWorld with the index persisted in dir (when not ""):
// the change feed journals every commit, heads are sealed every 97 events
// of a name, and a checkpoint is written every 2,100 events, so the data
// ends up spread over parts on disk, parts in memory and heads.
func newWorldWith(t testing.TB, dir string) *world {
	t.Helper()
	st, err := store.Open("", store.Options{FS: vfs.NewMem(), CacheBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{st: st, ix: index.New()}
	w.g, err = ingest.New(st, ingest.Options{
		Limits: config.Default().Limits,
		Now:    func() time.Time { return genNow },
		OnRecord: func(_ *ingest.Workspace, c *ingest.Changes, b *pebble.Batch) error {
			return w.ix.Journal(b, c)
		},
		OnApply: func(_ *ingest.Workspace, c *ingest.Changes, _ *pebble.Batch) error {
			w.ix.Apply(c)
			return nil
		},
		OnCommitted: func(uint64) {
			if w.ix.CheckpointDue(2100, time.Hour, time.Now()) {
				if err := w.ix.Checkpoint(st.DB(), st.Sync); err != nil {
					w.ckptErr = err
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.ws, _, err = w.g.CreateWorkspace(context.Background(), "default", ingest.Keys{})
	if err != nil {
		t.Fatal(err)
	}
	if dir != "" {
		w.ix, err = index.Open(context.Background(), st.DB(), w.ws.Num, index.LoadOptions{Dir: dir, SealEvents: 97})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { w.g.Close(); w.ix.Close(); st.Close() })
	return w
}

func (w *world) send(t testing.TB, msgs []*model.Message) {
	t.Helper()
	items := make([]message.Item, len(msgs))
	for i, m := range msgs {
		if m.Timestamp.IsZero() {
			m.Timestamp = genNow.Add(-time.Hour)
		}
		m.ReceivedAt = genNow
		items[i] = message.Item{Index: i, MessageID: m.MessageID, Msg: m, Raw: []byte("{}")}
	}
	res, err := w.g.Submit(context.Background(), w.ws, "test", items)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("rejected: %v", res.Rejected)
	}
}

func (w *world) load(t testing.TB, cfg gen.Config) {
	g := gen.New(cfg)
	w.send(t, g.Identifies())
	var batch []*model.Message
	for m := g.Next(); m != nil; m = g.Next() {
		batch = append(batch, m)
		if len(batch) == 500 {
			w.send(t, batch)
			batch = nil
		}
	}
	if len(batch) > 0 {
		w.send(t, batch)
	}
}

// profiles reads every live profile straight from the store, with its
// events: the oracle's input, independent of the index.
type rawProfile struct {
	num    uint32
	traits map[string]any
	events []model.Event
}

func (w *world) profiles(t testing.TB) []rawProfile {
	var out []rawProfile
	db := w.st.DB()
	err := store.ScanProfiles(context.Background(), db, w.ws.Num, func(num uint32, p *store.ProfileRecord) error {
		rp := rawProfile{num: num, traits: p.Traits}
		for _, n := range w.g.ProfileNums(w.ws, num) {
			err := store.ProfileEvents(context.Background(), db, w.ws.Num, n, func(ev store.StoredEvent) error {
				rp.events = append(rp.events, ev.Event)
				return nil
			})
			if err != nil {
				return err
			}
		}
		out = append(out, rp)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// randCond builds a random condition in JSON from the generator's
// vocabulary, covering every form and operator.
type condGen struct {
	r     *rand.Rand
	depth int
}

func (c *condGen) pick(xs ...string) string { return xs[c.r.IntN(len(xs))] }

func q(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (c *condGen) cond() string {
	if c.depth < 3 && c.r.IntN(3) == 0 {
		c.depth++
		defer func() { c.depth-- }()
		switch c.r.IntN(3) {
		case 0:
			return `{"not":` + c.cond() + `}`
		default:
			op := c.pick("and", "or")
			n := 1 + c.r.IntN(3)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = c.cond()
			}
			return `{"` + op + `":[` + strings.Join(parts, ",") + `]}`
		}
	}
	switch c.r.IntN(10) {
	case 0:
		return `{"all":true}`
	case 1, 2, 3, 4:
		return c.trait()
	default:
		return c.event()
	}
}

var dtOperand = []string{"2026-05-01T00:00:00Z", "2026-04-15T12:00:00+02:00", "2026-05-20T00:00:00Z"}

// test returns `"op": ..., "value": ...` for a value of the given flavour.
func (c *condGen) test(flavour string) string {
	ic := ""
	if c.r.IntN(4) == 0 {
		ic = `,"ignore_case":true`
	}
	str := func() string {
		switch flavour {
		case "city":
			return c.pick(gen.Cities...)
		case "plan":
			return c.pick(gen.Plans...)
		case "cat":
			return c.pick(gen.Categories...)
		case "genre":
			return c.pick(gen.Genres...)
		}
		return c.pick("Pop", "pro", "London", "x")
	}
	num := func() float64 {
		switch flavour {
		case "age":
			return float64(18 + c.r.IntN(60))
		case "price":
			return float64(c.r.IntN(500))
		case "year":
			return float64(2010 + c.r.IntN(10))
		}
		return float64(c.r.IntN(1000))
	}
	switch c.r.IntN(17) {
	case 0, 1:
		return `"op":` + q(c.pick("eq", "neq")) + `,"value":` + q(str()) + ic
	case 2:
		return `"op":` + q(c.pick("eq", "neq")) + `,"value":` + q(num())
	case 3:
		return `"op":` + q(c.pick("in", "not_in")) + `,"value":[` + q(str()) + `,` + q(str()) + `,` + q(num()) + `]` + ic
	case 4:
		return `"op":` + q(c.pick("contains", "not_contains")) + `,"value":` + q(prefix(str(), 2+c.r.IntN(2))) + ic
	case 5:
		return `"op":` + q(c.pick("starts_with", "ends_with")) + `,"value":` + q(prefix(str(), 1+c.r.IntN(2))) + ic
	case 6:
		return `"op":"matches","value":` + q(c.pick("^L", "on$", "[0-9]", "o+", "^(Pop|Rock)$")) + ic
	case 7, 8:
		return `"op":` + q(c.pick("gt", "gte", "lt", "lte")) + `,"value":` + q(num())
	case 9:
		a, b := num(), num()
		return `"op":"between","value":[` + q(min(a, b)) + `,` + q(max(a, b)) + `]`
	case 10:
		return `"op":` + q(c.pick("exists", "not_exists"))
	case 11:
		return `"op":` + q(c.pick("within_last", "not_within_last")) + `,"value":` + q(c.pick("1d", "7d", "30d", "2w", "12h"))
	case 12:
		return `"op":` + q(c.pick("gt", "lt", "gte", "eq")) + `,"value":` + q(c.pick(dtOperand...))
	case 13:
		return `"op":"between","value":["2026-04-01T00:00:00Z","2026-05-15T00:00:00Z"]`
	case 14:
		return `"op":"near","value":{"lat":51.5,"lon":-0.1,"radius_km":` + q(float64(20+c.r.IntN(100))) + `}`
	case 15:
		return `"op":"eq","value":` + q(c.r.IntN(2) == 0)
	}
	return `"op":` + q(c.pick("gt", "lt")) + `,"value":` + q(c.pick("M", "b", "pro"))
}

func (c *condGen) trait() string {
	name, flavour := "", ""
	switch c.r.IntN(11) {
	case 0, 1:
		name, flavour = "city", "city"
	case 2:
		name, flavour = "plan", "plan"
	case 3, 4:
		name, flavour = "age", "age"
	case 5:
		name, flavour = "ltv", ""
	case 6:
		name, flavour = "signed_up_at", ""
	case 7:
		name, flavour = "tags", "genre"
	case 8:
		name, flavour = "address.city", "city"
	case 9:
		name, flavour = c.pick("vip", "identified", "location", "nope"), ""
	default:
		name, flavour = "address.zip", ""
	}
	return `{"trait":` + q(name) + `,` + c.test(flavour) + `}`
}

func (c *condGen) event() string {
	name := c.pick(gen.EventNames...)
	if c.r.IntN(10) == 0 {
		name = c.pick("Rare Event 3", "Never Happened")
	}
	var parts []string
	parts = append(parts, `"event":`+q(name))
	if c.r.IntN(2) == 0 {
		var where []string
		for range 1 + c.r.IntN(2) {
			prop, flavour := "product_category", "cat"
			switch c.r.IntN(7) {
			case 1:
				prop, flavour = "price", "price"
			case 2:
				prop, flavour = "genre", "genre"
			case 3:
				prop, flavour = "year", "year"
			case 4:
				prop, flavour = "product.brand", ""
			case 5:
				prop, flavour = c.pick("referrer", "quantity", "query", "missing"), ""
			}
			where = append(where, `{"property":`+q(prop)+`,`+c.test(flavour)+`}`)
		}
		parts = append(parts, `"where":[`+strings.Join(where, ",")+`]`)
	}
	if c.r.IntN(2) == 0 {
		op := c.pick("eq", "neq", "gt", "gte", "lt", "lte", "between")
		if op == "between" {
			lo := c.r.IntN(4)
			parts = append(parts, fmt.Sprintf(`"count":{"op":"between","value":[%d,%d]}`, lo, lo+c.r.IntN(4)))
		} else {
			parts = append(parts, fmt.Sprintf(`"count":{"op":%q,"value":%d}`, op, c.r.IntN(5)))
		}
	}
	if c.r.IntN(3) == 0 {
		fn := c.pick("sum", "avg", "min", "max", "distinct")
		prop := c.pick("price", "quantity", "year", "product_category", "duration")
		op := c.pick("gt", "gte", "lt", "lte", "eq", "neq")
		v := float64(c.r.IntN(300))
		if fn == "distinct" {
			v = float64(c.r.IntN(4))
		}
		parts = append(parts, fmt.Sprintf(`"aggregate":{"fn":%q,"property":%q,"op":%q,"value":%v}`, fn, prop, op, v))
	}
	switch c.r.IntN(4) {
	case 0:
		parts = append(parts, `"within":{"last":`+q(c.pick("90s", "30m", "12h", "1d", "7d", "2w", "30d"))+`}`)
	case 1:
		parts = append(parts, `"within":{"from":"2026-05-10T00:00:00Z","to":"2026-05-20T12:00:00Z"}`)
	}
	return `{` + strings.Join(parts, ",") + `}`
}

// TestDifferentialAgainstOracle runs thousands of random conditions over
// generated data and compares members and per-leaf criteria counts with
// the brute-force oracle evaluated from the raw stored profiles and events.
//
// Three indexes answer: the one the change feed kept current, persisted
// (journaled, checkpointed into part files every 2,100 events, heads
// sealed into parts every 97); one loaded from the stored events, heads
// sealed every 50 events, in memory; and one opened from the first's
// checkpoint and journal, as a restart does.
func TestDifferentialAgainstOracle(t *testing.T) {
	dir := t.TempDir()
	w := newWorldWith(t, dir)
	w.load(t, gen.Config{Seed: 7, Profiles: 400, Events: 6000, Now: genNow, Days: 40})
	if w.ckptErr != nil {
		t.Fatal(w.ckptErr)
	}
	raw := w.profiles(t)
	if len(raw) < 300 {
		t.Fatalf("only %d profiles loaded", len(raw))
	}
	// The index loaded from the store must answer like the one the change
	// feed kept current.
	loaded, err := index.LoadWith(context.Background(), w.st.DB(), w.ws.Num, index.LoadOptions{SealEvents: 50})
	if err != nil {
		t.Fatal(err)
	}
	reopened, err := index.Open(context.Background(), w.st.DB(), w.ws.Num, index.LoadOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	// The reopened index folds every part wholly inside a window from its
	// kept partial aggregates (made at the first scan that needs one); the
	// loaded one too, with a budget so small that it evicts all the time.
	reopened.SetPartials(64<<20, 1)
	loaded.SetPartials(2<<10, 1)
	if files, _ := filepath.Glob(filepath.Join(dir, "p-*.col")); len(files) < 10 {
		t.Fatalf("%d part files: the test must cross parts on disk", len(files))
	}
	if n := reopened.Replayed(); n == 0 {
		t.Fatal("the reopened index replayed no journal entry: the test must cover the tail after a checkpoint")
	}
	// The loaded index counts event scans in partitions of 4 profiles and
	// buffers of 8 events, as a large workspace does at scale,
	loaded.SetScanCacheBytes(16)
	// and splits every scan over up to three workers.
	loaded.SetScanParallel(3, 1, 0)
	refs := map[string]*roaring.Bitmap{"s1": roaring.New(), "s2": roaring.New()}
	for _, p := range raw {
		if p.num%3 == 0 {
			refs["s1"].Add(p.num)
		}
		if p.num%5 < 2 {
			refs["s2"].Add(p.num)
		}
	}
	refFn := func(id string) (*roaring.Bitmap, error) { return refs[id], nil }

	cg := &condGen{r: rand.New(rand.NewPCG(1, 2))}
	runs := 2000
	if testing.Short() {
		runs = 300
	}
	nonTrivial := 0
	for i := range runs {
		src := cg.cond()
		if i%25 == 0 {
			src = `{"and":[` + src + `,{"segment":"s1"}]}`
		}
		if i%40 == 0 {
			src = `{"or":[{"not":{"segment":"s2"}},` + src + `]}`
		}
		n, err := condition.Parse([]byte(src))
		if err != nil {
			t.Fatalf("generated an invalid condition %s: %v", src, err)
		}
		now := genNow.Add(-time.Duration(i%5) * 7 * time.Hour)
		got, err := segment.Evaluate(w.ix, n, now, refFn, true)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		fast, err := segment.Evaluate(loaded, n, now, refFn, false)
		if err != nil {
			t.Fatal(err)
		}
		want := roaring.New()
		leaves := n.Leaves()
		crit := make([]uint64, len(leaves))
		for _, p := range raw {
			in := oracle.Input{Traits: p.traits, Events: p.events, InSegment: func(id string) bool { return refs[id].Contains(p.num) }}
			if oracle.Match(n, in, now) {
				want.Add(p.num)
			}
			for j, ok := range oracle.Criteria(n, in, now) {
				if ok {
					crit[j]++
				}
			}
		}
		if !got.Members.Equals(want) {
			extra := roaring.AndNot(got.Members, want)
			missing := roaring.AndNot(want, got.Members)
			t.Fatalf("condition %d %s\nindex %d members, oracle %d; extra %v missing %v",
				i, src, got.Members.GetCardinality(), want.GetCardinality(), head(extra), head(missing))
		}
		if !fast.Members.Equals(want) {
			t.Fatalf("condition %d %s: the loaded index without criteria gives %d members, oracle %d", i, src, fast.Members.GetCardinality(), want.GetCardinality())
		}
		for range 2 { // the second from the partials the first made
			re, err := segment.Evaluate(reopened, n, now, refFn, false)
			if err != nil {
				t.Fatal(err)
			}
			if !re.Members.Equals(want) {
				t.Fatalf("condition %d %s: the reopened index gives %d members, oracle %d", i, src, re.Members.GetCardinality(), want.GetCardinality())
			}
		}
		for j, c := range got.Criteria {
			if c.Path != leaves[j].Path || c.Size != crit[j] {
				t.Fatalf("condition %d %s: criterion %q size %d, oracle %d", i, src, c.Path, c.Size, crit[j])
			}
		}
		if c := want.GetCardinality(); c > 0 && c < uint64(len(raw)) {
			nonTrivial++
		}
	}
	if bytes, hits, made := reopened.PartialStats(); hits < 500 || made < 100 {
		t.Errorf("reopened index: %d partials made, %d used, %d bytes kept: the test must cover them", made, hits, bytes)
	}
	if bytes, _, made := loaded.PartialStats(); made < 1000 || bytes > 2<<10 {
		t.Errorf("loaded index: %d partials made, %d bytes kept: the test must cover eviction within the budget", made, bytes)
	}
	// The generator must produce conditions that split the population, or
	// the comparison proves little.
	if nonTrivial < runs/5 {
		t.Errorf("only %d of %d conditions split the population", nonTrivial, runs)
	}
	t.Logf("%d conditions, %d non-trivial, over %d profiles", runs, nonTrivial, len(raw))
}

func head(bm *roaring.Bitmap) []uint32 {
	a := bm.ToArray()
	return a[:min(5, len(a))]
}

func prefix(s string, n int) string { return s[:min(n, len(s))] }
