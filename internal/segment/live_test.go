package segment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/store"
)

// clock is a clock the test drives.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// liveWorld is the real ingest path with the segment manager listening.
type liveWorld struct {
	fs  vfs.FS
	st  *store.Store
	g   *ingest.Ingester
	m   *segment.Manager
	ws  *ingest.Workspace
	clk *clock
}

func openLive(t testing.TB, fs vfs.FS, clk *clock) *liveWorld {
	return openLiveOpts(t, fs, clk, segment.Options{ParallelFrom: 1})
}

func openLiveOpts(t testing.TB, fs vfs.FS, clk *clock, opts segment.Options, limits ...func(*config.Limits)) *liveWorld {
	t.Helper()
	return openLiveHooked(t, fs, clk, opts, nil, limits...)
}

// openLiveHooked is openLiveOpts with hook, when set, changing the
// ingestion path's options after the manager's listeners are set.
func openLiveHooked(t testing.TB, fs vfs.FS, clk *clock, opts segment.Options, hook func(*ingest.Options), limits ...func(*config.Limits)) *liveWorld {
	t.Helper()
	st, err := store.Open("", store.Options{FS: fs, CacheBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	opts.Now, opts.BuildWait = clk.Now, time.Minute
	if opts.RunsFrom == 0 {
		// Every walk long enough to keep a running state keeps it: the
		// replay tests check the states against full evaluations.
		opts.RunsFrom = 1
	}
	if opts.IndexDir == "" {
		// The index persisted beside the store, across reopenings of the
		// same fs, checkpointed every 40 events, heads sealed every 7:
		// every evaluation crosses parts on disk, in memory and heads.
		opts.IndexDir = indexDirFor(t, fs)
		opts.CheckpointEvents, opts.SealEvents = 40, 7
	}
	m, err := segment.Open(context.Background(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	lim := config.Default().Limits
	for _, f := range limits {
		f(&lim)
	}
	o := ingest.Options{Limits: lim, Now: clk.Now}
	m.Listen(&o)
	if hook != nil {
		hook(&o)
	}
	g, err := ingest.New(st, o)
	if err != nil {
		t.Fatal(err)
	}
	ws, ok := g.WorkspaceByName("default")
	if !ok {
		if ws, _, err = g.CreateWorkspace(context.Background(), "default", ingest.Keys{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Attach(g); err != nil {
		t.Fatal(err)
	}
	return &liveWorld{fs: fs, st: st, g: g, m: m, ws: ws, clk: clk}
}

// indexDirs are the index directories of the stores' file systems.
var indexDirs sync.Map

func indexDirFor(t testing.TB, fs vfs.FS) string {
	if d, ok := indexDirs.Load(fs); ok {
		return d.(string)
	}
	d := t.TempDir()
	indexDirs.Store(fs, d)
	return d
}

func (w *liveWorld) close() {
	w.m.Close()
	w.g.Close()
	w.m.CloseIndexes()
	w.st.Close()
}

func (w *liveWorld) send(t testing.TB, msgs ...*model.Message) {
	t.Helper()
	items := make([]message.Item, len(msgs))
	for i, m := range msgs {
		m.ReceivedAt = w.clk.Now()
		if m.Timestamp.IsZero() {
			m.Timestamp = m.ReceivedAt
		}
		items[i] = message.Item{Index: i, MessageID: m.MessageID, Msg: m, Raw: []byte("{}")}
	}
	if _, err := w.g.Submit(context.Background(), w.ws, "test", items); err != nil {
		t.Fatal(err)
	}
}

// replay rebuilds every segment's members from the changelog, checking
// that seqs run 1, 2, 3, … with no gap and no exit of a non-member.
func (w *liveWorld) replay(t testing.TB) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	want := uint64(1)
	err := store.ScanChanges(w.st.DB(), w.ws.Num, 0, func(seq uint64, rec []byte) bool {
		c, _, err := segment.DecodeChange(rec)
		if err != nil {
			t.Fatal(err)
		}
		if seq != want || c.Seq != seq {
			t.Fatalf("change seq %d (record says %d), want %d: seqs must be gapless", seq, c.Seq, want)
		}
		want++
		if out[c.Segment] == nil {
			out[c.Segment] = map[string]bool{}
		}
		switch c.Change {
		case "enter":
			if out[c.Segment][c.User] {
				t.Fatalf("seq %d: %s enters %s twice", seq, c.User, c.Segment)
			}
			out[c.Segment][c.User] = true
		case "exit":
			if !out[c.Segment][c.User] {
				t.Fatalf("seq %d: %s exits %s without having entered", seq, c.User, c.Segment)
			}
			delete(out[c.Segment], c.User)
		default:
			t.Fatalf("seq %d: change %q", seq, c.Change)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// batch evaluates every segment from scratch (references first) at now and
// names members by canonical id.
func (w *liveWorld) batch(t testing.TB, now time.Time) map[string]map[string]bool {
	t.Helper()
	segs := w.m.List(w.ws)
	ix := w.m.Index(w.ws)
	done := map[string]*roaring.Bitmap{}
	nodes := map[string]*condition.Node{}
	for _, s := range segs {
		n, err := condition.Parse(s.Condition)
		if err != nil {
			t.Fatal(err)
		}
		nodes[s.ID] = n
	}
	var eval func(id string) *roaring.Bitmap
	eval = func(id string) *roaring.Bitmap {
		if bm, ok := done[id]; ok {
			return bm
		}
		res, err := segment.Evaluate(ix, nodes[id], now, func(ref string) (*roaring.Bitmap, error) { return eval(ref), nil }, false)
		if err != nil {
			t.Fatal(err)
		}
		done[id] = res.Members
		return res.Members
	}
	out := map[string]map[string]bool{}
	for _, s := range segs {
		out[s.ID] = map[string]bool{}
		for _, n := range eval(s.ID).ToArray() {
			id := w.canonical(t, n)
			out[s.ID][id] = true
		}
	}
	return out
}

func (w *liveWorld) canonical(t testing.TB, n uint32) string {
	p, ok, err := store.ReadProfile(w.st.DB(), w.ws.Num, n)
	if err != nil || !ok {
		t.Fatalf("profile %d: %v %v", n, ok, err)
	}
	return p.ID
}

func sameMembers(a, b map[string]map[string]bool) (string, bool) {
	for id := range a {
		if !maps.Equal(a[id], b[id]) && !(len(a[id]) == 0 && len(b[id]) == 0) {
			return id, false
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok && len(b[id]) > 0 {
			return id, false
		}
	}
	return "", true
}

func diffSets(a, b map[string]bool) (extra, missing []string) {
	for k := range a {
		if !b[k] {
			extra = append(extra, k)
		}
	}
	for k := range b {
		if !a[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	return
}

// TestReplayEqualsBatch interleaves events, trait updates, merges,
// deletions, segment creations and edits, and clock advances; after every
// step, replaying the changelog from seq 0 gives every segment exactly the
// members a full batch evaluation gives.
func TestReplayEqualsBatch(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { replayScenario(t, seed, 160, 25, false) })
	}
}

// TestReplayManyEventsPerProfile is TestReplayEqualsBatch with the
// segments made first and then left alone, and few users, so that each
// profile gathers many events and the same profiles' leaves are
// re-evaluated over many steps: events on time, late and early, merges,
// deletions and time passing.
func TestReplayManyEventsPerProfile(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { replayScenario(t, seed, 220, 6, true) })
	}
}

// replayScenario runs steps random steps over users user ids (and as many
// anonymous ones), checking after each that the change stream's members
// are a batch evaluation's. With fixedSegs the first 12 steps make the
// segments and no later step changes them or restarts.
func replayScenario(t *testing.T, seed uint64, steps, nusers int, fixedSegs bool) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLive(t, vfs.NewMem(), clk)
	defer func() { w.close() }()
	r := rand.New(rand.NewPCG(seed, 99))
	cg := &condGen{r: rand.New(rand.NewPCG(seed, 7))}
	users := func() string { return fmt.Sprintf("u%d", r.IntN(nusers)) }
	anons := func() string { return fmt.Sprintf("a%d", r.IntN(nusers)) }
	var segIDs []string
	msgID := 0
	next := func() string { msgID++; return fmt.Sprintf("m%d", msgID) }
	for step := range steps {
		op := r.IntN(20)
		if fixedSegs {
			switch {
			case step < 12:
				op = 13 // a new segment
			case op >= 13 && op < 18:
				op = 0 // events instead of segment changes and restarts
			}
		}
		desc := ""
		switch {
		case op < 7: // a batch of events
			var msgs []*model.Message
			for range 1 + r.IntN(6) {
				name := gen.EventNames[r.IntN(len(gen.EventNames))]
				m := &model.Message{Type: model.Track, Event: name, MessageID: next(),
					Properties: map[string]any{"product_category": gen.Categories[r.IntN(4)], "price": float64(r.IntN(500)),
						"genre": gen.Genres[r.IntN(4)], "year": float64(2015 + r.IntN(4))},
					Timestamp: clk.Now().Add(-time.Duration(r.IntN(10*24)) * time.Hour)}
				if r.IntN(10) == 0 {
					m.Timestamp = clk.Now().Add(time.Duration(1+r.IntN(48)) * time.Hour) // from the future
				}
				if r.IntN(3) == 0 {
					m.AnonymousID = anons()
				} else {
					m.UserID = users()
				}
				msgs = append(msgs, m)
			}
			w.send(t, msgs...)
			desc = fmt.Sprintf("%d events", len(msgs))
		case op < 10: // trait updates
			traits := map[string]any{"city": gen.Cities[r.IntN(len(gen.Cities))], "age": float64(18 + r.IntN(60))}
			if r.IntN(3) == 0 {
				traits["plan"] = gen.Plans[r.IntN(len(gen.Plans))]
			}
			if r.IntN(3) == 0 {
				traits["signed_up_at"] = clk.Now().Add(-time.Duration(r.IntN(20*24)) * time.Hour).Format(time.RFC3339)
			}
			if r.IntN(5) == 0 {
				traits["age"] = "thirty" // a type change
			}
			m := &model.Message{Type: model.Identify, Traits: traits, MessageID: next()}
			if r.IntN(4) == 0 {
				m.AnonymousID = anons()
			} else {
				m.UserID = users()
			}
			w.send(t, m)
			desc = "identify"
		case op < 12: // merges: identify an anonymous visitor, or alias
			if r.IntN(2) == 0 {
				w.send(t, &model.Message{Type: model.Identify, UserID: users(), AnonymousID: anons(), MessageID: next()})
				desc = "identify with both ids"
			} else {
				w.send(t, &model.Message{Type: model.Alias, PreviousID: users(), UserID: users(), MessageID: next()})
				desc = "alias"
			}
		case op < 13: // a deletion
			id := users()
			if _, err := w.g.DeleteUser(context.Background(), w.ws, id); err != nil {
				t.Fatal(err)
			}
			desc = "delete " + id
		case op < 16 || len(segIDs) == 0: // a new segment
			src := cg.cond()
			if len(segIDs) > 0 && r.IntN(3) == 0 {
				src = fmt.Sprintf(`{"or":[{"segment":%q},%s]}`, segIDs[r.IntN(len(segIDs))], src)
			}
			id := fmt.Sprintf("s%d", step)
			if _, err := w.m.Create(context.Background(), w.ws, id, id, json.RawMessage(src)); err != nil {
				t.Fatalf("create %s: %v", src, err)
			}
			segIDs = append(segIDs, id)
			desc = "create " + id + " " + src
		case op < 17 && r.IntN(4) == 0: // a deletion of a segment
			i := r.IntN(len(segIDs))
			err := w.m.Delete(context.Background(), w.ws, segIDs[i])
			switch {
			case err == nil:
				desc = "delete segment " + segIDs[i]
				segIDs = slices.Delete(segIDs, i, i+1)
			case errors.Is(err, segment.ErrConflict):
				desc = "delete a segment in use (refused)"
			default:
				t.Fatal(err)
			}
		case op < 17: // an edit
			id := segIDs[r.IntN(len(segIDs))]
			src := cg.cond()
			if _, err := w.m.Update(context.Background(), w.ws, id, "", json.RawMessage(src)); err != nil {
				t.Fatalf("update %s %s: %v", id, src, err)
			}
			desc = "edit " + id + " " + src
		case op < 18: // a restart
			w.close()
			w = openLive(t, w.fs, clk)
			desc = "restart"
		default: // time passes
			d := time.Duration(1+r.IntN(72)) * time.Hour
			if r.IntN(3) == 0 {
				d = time.Duration(1+r.IntN(90)) * time.Minute
			}
			clk.Advance(d)
			if err := w.m.Tick(context.Background(), clk.Now()); err != nil {
				t.Fatal(err)
			}
			desc = "advance " + d.String()
		}
		w.m.WaitBuilds()
		got, want := w.replay(t), w.batch(t, clk.Now())
		if id, ok := sameMembers(got, want); !ok {
			extra, missing := diffSets(got[id], want[id])
			s, _ := w.m.Get(w.ws, id)
			t.Fatalf("seed %d step %d (%s): segment %s %s\nreplay has extra %v, misses %v", seed, step, desc, id, s.Condition, extra, missing)
		}
	}
	if len(segIDs) < 10 {
		t.Errorf("only %d segments were created", len(segIDs))
	}
}

// TestBotContainment: a profile over the events-per-minute threshold is
// flagged with the "$bot" trait, none of its events is dropped, its
// re-evaluation is throttled, and the deferred work is done by a timer.
func TestBotContainment(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLiveOpts(t, vfs.NewMem(), clk, segment.Options{}, func(l *config.Limits) { l.BotEventsPerMinute = 5 })
	defer w.close()
	ctx := context.Background()
	w.send(t, &model.Message{Type: model.Identify, UserID: "human", Traits: map[string]any{}}, &model.Message{Type: model.Identify, UserID: "crawler", Traits: map[string]any{}})
	for id, s := range map[string]string{"count10": `{"event":"Page Viewed","count":{"op":"gte","value":10}}`, "bots": `{"trait":"$bot","op":"eq","value":true}`} {
		if _, err := w.m.Create(ctx, w.ws, id, id, json.RawMessage(s)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		user := "crawler"
		if i%10 == 0 {
			user = "human"
		}
		w.send(t, &model.Message{Type: model.Track, UserID: user, Event: "Page Viewed", MessageID: fmt.Sprint("p", i)})
	}
	p := w.user(t, "crawler")
	if p.Traits["$bot"] != true {
		t.Fatalf("crawler traits %v: not flagged", p.Traits)
	}
	if h := w.user(t, "human"); h.Traits["$bot"] != nil {
		t.Fatalf("human flagged: %v", h.Traits)
	}
	crawler, _, _ := store.ResolveID(w.st.DB(), w.ws.Num, "crawler")
	stored := 0
	store.ProfileEvents(ctx, w.st.DB(), w.ws.Num, crawler, func(store.StoredEvent) error { stored++; return nil })
	if stored != 27 {
		t.Errorf("the crawler has %d events stored, want all 27", stored)
	}
	got := w.replay(t)
	if !got["bots"]["crawler"] || len(got["bots"]) != 1 {
		t.Errorf("$bot segment members %v, want the crawler", got["bots"])
	}
	// The count segment lags while the crawler is throttled…
	if got["count10"]["crawler"] {
		t.Error("the throttled crawler was re-evaluated within its quiet period")
	}
	// …and catches up when its deferred re-evaluation fires.
	clk.Advance(11 * time.Second)
	if err := w.m.Tick(ctx, clk.Now()); err != nil {
		t.Fatal(err)
	}
	got, want := w.replay(t), w.batch(t, clk.Now())
	if id, ok := sameMembers(got, want); !ok {
		t.Fatalf("segment %s after the quiet period: replay %v, batch %v", id, got[id], want[id])
	}
	if !got["count10"]["crawler"] {
		t.Fatal("the crawler's deferred re-evaluation did not happen")
	}

	// A profile that crosses the threshold and gets a trait in the same
	// commit group keeps both (the flag once went around the group's
	// profile cache, and the group's own write of the profile lost it).
	batch := []*model.Message{}
	for i := range 7 {
		batch = append(batch, &model.Message{Type: model.Track, UserID: "scraper", Event: "Page Viewed", MessageID: fmt.Sprint("s", i)})
	}
	batch = append(batch, &model.Message{Type: model.Identify, UserID: "scraper", Traits: map[string]any{"plan": "free"}})
	w.send(t, batch...)
	if tr := w.user(t, "scraper").Traits; tr["$bot"] != true || tr["plan"] != "free" {
		t.Fatalf("scraper traits %v: want $bot true and plan free", tr)
	}

	// Flags are lifted after a quiet day: the trait goes, and the
	// segments that read it follow.
	clk.Advance(ingest.BotQuiet + time.Hour)
	if err := w.g.ExpireBots(ctx, w.ws); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"crawler", "scraper"} {
		if tr := w.user(t, id).Traits; tr["$bot"] != nil {
			t.Errorf("%s still flagged after a quiet day: %v", id, tr)
		}
	}
	got, want = w.replay(t), w.batch(t, clk.Now())
	if id, ok := sameMembers(got, want); !ok {
		t.Fatalf("segment %s after the flags expired: replay %v, batch %v", id, got[id], want[id])
	}
	if len(got["bots"]) != 0 {
		t.Errorf("bots segment still has %v", got["bots"])
	}
}

func (w *liveWorld) user(t testing.TB, id string) *store.ProfileRecord {
	t.Helper()
	n, ok, err := store.ResolveID(w.st.DB(), w.ws.Num, id)
	if err != nil || !ok {
		t.Fatalf("resolve %s: %v %v", id, ok, err)
	}
	p, ok, err := store.ReadProfile(w.st.DB(), w.ws.Num, n)
	if err != nil || !ok {
		t.Fatalf("profile %s: %v %v", id, ok, err)
	}
	return p
}

// TestChangeOrigin: a membership change caused by a source's record
// carries the record's origin (stored, decoded and streamed); one caused
// by an ordinary message carries none.
func TestChangeOrigin(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLive(t, vfs.NewMem(), clk)
	defer w.close()
	ctx := context.Background()
	if _, err := w.m.Create(ctx, w.ws, "buyers", "buyers", json.RawMessage(`{"event":"Order Completed"}`)); err != nil {
		t.Fatal(err)
	}
	for i, origin := range []string{"kafka:orders:3:1207", ""} {
		m := &model.Message{Type: model.Track, UserID: fmt.Sprint("u", i), Event: "Order Completed", Timestamp: clk.Now(), ReceivedAt: clk.Now()}
		item := message.Item{Msg: m, Raw: []byte(`{}`), Origin: origin}
		if _, err := w.g.Submit(ctx, w.ws, "test", []message.Item{item}); err != nil {
			t.Fatal(err)
		}
	}
	changes, _, err := segment.ReadChanges(w.st.DB(), w.ws.Num, 0, 100, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range changes {
		got[c.User] = c.Origin
	}
	if got["u0"] != "kafka:orders:3:1207" || got["u1"] != "" || len(got) != 2 {
		t.Fatalf("origins by user %v, want u0's Kafka record and none for u1", got)
	}
}

// TestEvaluateGivesUp: an evaluation whose context is done stops and
// answers the context's error (a query whose client went away releases
// the index, and so the applier), for trait and event leaves alike.
func TestEvaluateGivesUp(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLive(t, vfs.NewMem(), clk)
	defer w.close()
	var msgs []*model.Message
	for i := range 200 {
		msgs = append(msgs, &model.Message{Type: model.Track, UserID: fmt.Sprint("u", i%20), Event: "E"})
	}
	w.send(t, msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, src := range []string{`{"event":"E","count":{"op":"gte","value":3}}`, `{"trait":"plan","op":"eq","value":"pro"}`} {
		n, err := condition.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := segment.EvaluateContext(ctx, w.m.Index(w.ws), n, clk.Now(), nil, true); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", src, err)
		}
		if res, err := segment.EvaluateContext(context.Background(), w.m.Index(w.ws), n, clk.Now(), nil, true); err != nil || res == nil {
			t.Errorf("%s: %v", src, err)
		}
	}
	if _, err := w.m.Query(ctx, w.ws, json.RawMessage(`{"event":"E"}`), false, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("a query with a cancelled request context: %v, want context.Canceled", err)
	}
}

// TestTraitCacheFollowsWithoutSegments: while no segment is defined,
// OnApply skips re-evaluation but must still keep its cache of decoded
// traits current, or a segment created later re-evaluates a profile
// against traits it no longer has.
func TestTraitCacheFollowsWithoutSegments(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLive(t, vfs.NewMem(), clk)
	defer w.close()
	ctx := context.Background()
	cond := json.RawMessage(`{"and":[{"event":"E"},{"trait":"plan","op":"eq","value":"pro"}]}`)
	n := 0
	send := func(m *model.Message) {
		n++
		m.MessageID, m.UserID = fmt.Sprint("m", n), "u1"
		w.send(t, m)
	}
	if _, err := w.m.Create(ctx, w.ws, "a", "a", cond); err != nil {
		t.Fatal(err)
	}
	send(&model.Message{Type: model.Identify, Traits: map[string]any{"plan": "free"}})
	send(&model.Message{Type: model.Track, Event: "E"}) // u1's traits cached: free
	if err := w.m.Delete(ctx, w.ws, "a"); err != nil {
		t.Fatal(err)
	}
	send(&model.Message{Type: model.Identify, Traits: map[string]any{"plan": "pro"}}) // no segment
	if _, err := w.m.Create(ctx, w.ws, "b", "b", cond); err != nil {
		t.Fatal(err)
	}
	send(&model.Message{Type: model.Track, Event: "E"}) // re-evaluated from the cache
	if got := w.replay(t)["b"]; !got["u1"] {
		t.Fatalf("members of b from the change stream %v, want u1 (plan pro, did E)", got)
	}
}
