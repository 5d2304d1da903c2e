package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	t  *testing.T
	st *store.Store
	g  *Ingester
	ws *Workspace
}

func newEnv(t *testing.T, lim config.Limits) *env {
	t.Helper()
	return newEnvWith(t, Options{Limits: lim})
}

// newEnvWith is newEnv with more options (Now defaults to t0).
func newEnvWith(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	st, err := store.Open("", store.Options{FS: vfs.NewMem(), CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := g.CreateWorkspace(context.Background(), "default", Keys{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return &env{t: t, st: st, g: g, ws: ws}
}

// send submits messages (each its own item) and returns the rejections.
func (e *env) send(msgs ...*model.Message) []Rejected {
	e.t.Helper()
	items := make([]message.Item, len(msgs))
	for i, m := range msgs {
		if m.Timestamp.IsZero() {
			m.Timestamp = t0
		}
		m.ReceivedAt = t0
		items[i] = message.Item{Index: i, MessageID: m.MessageID, Msg: m, Raw: []byte(`{}`)}
	}
	res, err := e.g.Submit(context.Background(), e.ws, "test", items)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Rejected
}

// user returns the profile id resolves to, or nil.
func (e *env) user(id string) *store.ProfileRecord {
	e.t.Helper()
	n, ok, err := store.ResolveID(e.st.DB(), e.ws.Num, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	p, ok, err := store.ReadProfile(e.st.DB(), e.ws.Num, n)
	if err != nil || !ok {
		e.t.Fatalf("id %q links to profile %d: found=%v err=%v", id, n, ok, err)
	}
	return p
}

// events returns the names of the events of the profile id resolves to.
func (e *env) events(id string) []string {
	e.t.Helper()
	n, ok, err := store.ResolveID(e.st.DB(), e.ws.Num, id)
	if err != nil || !ok {
		e.t.Fatalf("resolve %q: %v %v", id, ok, err)
	}
	var out []string
	for _, num := range e.g.ProfileNums(e.ws, n) {
		err := store.ProfileEvents(context.Background(), e.st.DB(), e.ws.Num, num, func(ev store.StoredEvent) error {
			out = append(out, ev.Name)
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

func identify(user, anon string, traits map[string]any) *model.Message {
	return &model.Message{Type: model.Identify, UserID: user, AnonymousID: anon, Traits: traits}
}

func track(user, anon, event string) *model.Message {
	return &model.Message{Type: model.Track, UserID: user, AnonymousID: anon, Event: event, Properties: map[string]any{}}
}

func alias(prev, user string) *model.Message {
	return &model.Message{Type: model.Alias, PreviousID: prev, UserID: user}
}

func TestIdentityResolution(t *testing.T) {
	type want struct {
		lookup string   // an id to resolve
		id     string   // canonical id it must resolve to ("" = unknown)
		ids    []string // every linked id, sorted
		traits map[string]any
		events []string
	}
	cases := []struct {
		name string
		msgs []*model.Message
		want []want
	}{
		{
			name: "anonymous profile gets its userId",
			msgs: []*model.Message{
				track("", "a1", "Viewed"),
				identify("u1", "a1", map[string]any{"plan": "pro"}),
			},
			want: []want{
				{lookup: "a1", id: "u1", ids: []string{"a1", "u1"}, traits: map[string]any{"plan": "pro"}, events: []string{"Viewed"}},
				{lookup: "u1", id: "u1", ids: []string{"a1", "u1"}, traits: map[string]any{"plan": "pro"}, events: []string{"Viewed"}},
			},
		},
		{
			name: "anonymous profile merges into an existing user; the user's own values win",
			msgs: []*model.Message{
				identify("u1", "", map[string]any{"city": "London", "age": 30.0}),
				track("u1", "", "Ordered"),
				identify("", "a1", map[string]any{"city": "Paris", "device": "ios"}),
				track("", "a1", "Viewed"),
				track("u1", "a1", "Added"),
			},
			want: []want{
				{lookup: "a1", id: "u1", ids: []string{"a1", "u1"}, traits: map[string]any{"city": "London", "age": 30.0, "device": "ios"}, events: []string{"Added", "Ordered", "Viewed"}},
			},
		},
		{
			name: "alias merges two users into the userId's profile",
			msgs: []*model.Message{
				identify("old", "", map[string]any{"email": "x@y.z", "tier": 1.0}),
				track("old", "", "Login"),
				identify("new", "", map[string]any{"tier": 2.0}),
				track("new", "", "Paid"),
				alias("old", "new"),
			},
			want: []want{
				{lookup: "old", id: "new", ids: []string{"new", "old"}, traits: map[string]any{"email": "x@y.z", "tier": 2.0}, events: []string{"Login", "Paid"}},
				{lookup: "new", id: "new", ids: []string{"new", "old"}, traits: map[string]any{"email": "x@y.z", "tier": 2.0}, events: []string{"Login", "Paid"}},
			},
		},
		{
			name: "alias of an unknown previousId links it",
			msgs: []*model.Message{identify("u1", "", nil), alias("legacy-7", "u1")},
			want: []want{{lookup: "legacy-7", id: "u1", ids: []string{"legacy-7", "u1"}, traits: map[string]any{}}},
		},
		{
			name: "alias renames a known profile to the new userId",
			msgs: []*model.Message{identify("", "a9", map[string]any{"k": "v"}), alias("a9", "u9")},
			want: []want{{lookup: "u9", id: "u9", ids: []string{"a9", "u9"}, traits: map[string]any{"k": "v"}}},
		},
		{
			name: "chained merges resolve every id to the survivor",
			msgs: []*model.Message{
				track("", "a1", "E1"), track("", "a2", "E2"),
				track("u1", "a1", "E3"), track("u2", "a2", "E4"),
				alias("u1", "u2"),
			},
			want: []want{
				{lookup: "a1", id: "u2", ids: []string{"a1", "a2", "u1", "u2"}, traits: map[string]any{}, events: []string{"E1", "E2", "E3", "E4"}},
				{lookup: "a2", id: "u2", ids: []string{"a1", "a2", "u1", "u2"}, traits: map[string]any{}, events: []string{"E1", "E2", "E3", "E4"}},
			},
		},
		{
			name: "a shared device does not merge two identified users",
			msgs: []*model.Message{
				identify("alice", "dev", map[string]any{"n": "a"}),
				identify("bob", "dev", map[string]any{"n": "b"}),
			},
			want: []want{
				{lookup: "dev", id: "alice", ids: []string{"alice", "dev"}, traits: map[string]any{"n": "a"}},
				{lookup: "bob", id: "bob", ids: []string{"bob"}, traits: map[string]any{"n": "b"}},
			},
		},
		{
			name: "traits are last-writer-wins in array order",
			msgs: []*model.Message{
				identify("u1", "", map[string]any{"plan": "free"}),
				identify("u1", "", map[string]any{"plan": "pro"}),
			},
			want: []want{{lookup: "u1", id: "u1", ids: []string{"u1"}, traits: map[string]any{"plan": "pro"}}},
		},
		{
			name: "a type conflict is stored as sent",
			msgs: []*model.Message{
				identify("u1", "", map[string]any{"age": 31.0}),
				identify("u2", "", map[string]any{"age": "$31"}),
			},
			want: []want{
				{lookup: "u1", id: "u1", ids: []string{"u1"}, traits: map[string]any{"age": 31.0}},
				{lookup: "u2", id: "u2", ids: []string{"u2"}, traits: map[string]any{"age": "$31"}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, config.Default().Limits)
			// Each message in its own submission, then all in one batch:
			// the answer must not depend on how commits group them.
			for _, grouped := range []bool{false, true} {
				if grouped {
					e = newEnv(t, config.Default().Limits)
					if rej := e.send(tc.msgs...); rej != nil {
						t.Fatalf("rejected: %v", rej)
					}
				} else {
					for _, m := range tc.msgs {
						if rej := e.send(m); rej != nil {
							t.Fatalf("rejected: %v", rej)
						}
					}
				}
				for _, w := range tc.want {
					p := e.user(w.lookup)
					if p == nil {
						t.Fatalf("grouped=%v: %q resolves to nothing", grouped, w.lookup)
					}
					ids := slices.Sorted(slices.Values(p.IDs))
					if p.ID != w.id || !slices.Equal(ids, w.ids) {
						t.Errorf("grouped=%v: %q → id %q ids %v, want %q %v", grouped, w.lookup, p.ID, ids, w.id, w.ids)
					}
					if fmt.Sprint(p.Traits) != fmt.Sprint(w.traits) {
						t.Errorf("grouped=%v: %q traits %v, want %v", grouped, w.lookup, p.Traits, w.traits)
					}
					if got := e.events(w.lookup); !slices.Equal(got, w.events) {
						t.Errorf("grouped=%v: %q events %v, want %v", grouped, w.lookup, got, w.events)
					}
				}
			}
		})
	}
}

func TestTypeConflictsInSchema(t *testing.T) {
	e := newEnv(t, config.Default().Limits)
	e.send(identify("u1", "", map[string]any{"age": 31.0}), identify("u2", "", map[string]any{"age": "$31"}), identify("u3", "", map[string]any{"age": 40.0}))
	m := track("u1", "", "Bought")
	m.Properties = map[string]any{"price": 9.5}
	m2 := track("u2", "", "Bought")
	m2.Properties = map[string]any{"price": "9.50"}
	e.send(m, m2)
	s := e.ws.Schema.Snapshot()
	if len(s.Traits) != 1 || s.Traits[0].Types[model.Number] != 2 || s.Traits[0].Types[model.String] != 1 {
		t.Errorf("trait schema %+v, want age: number 2, string 1", s.Traits)
	}
	if len(s.Events) != 1 || s.Events[0].Count != 2 || s.Events[0].Properties[0].Types[model.Number] != 1 || s.Events[0].Properties[0].Types[model.String] != 1 {
		t.Errorf("event schema %+v, want Bought ×2 with price number 1, string 1", s.Events)
	}
}

func TestDuplicateMessageIDs(t *testing.T) {
	e := newEnv(t, config.Default().Limits)
	a := track("u1", "", "A")
	a.MessageID = "m-1"
	b := track("u1", "", "A")
	b.MessageID = "m-1" // a retry inside the same batch
	e.send(a, b)
	c := track("u1", "", "A")
	c.MessageID = "m-1" // a retry in a later request
	e.send(c)
	if got := e.events("u1"); len(got) != 1 {
		t.Fatalf("events %v, want exactly one", got)
	}
}

func TestLimits(t *testing.T) {
	lim := config.Default().Limits
	lim.MaxEventNames, lim.MaxTraits, lim.MaxProperties = 3, 2, 2
	e := newEnv(t, lim)
	var msgs []*model.Message
	for i := range 5 {
		msgs = append(msgs, track("u1", "", fmt.Sprintf("user-%d", i)))
	}
	rej := e.send(msgs...)
	if len(rej) != 2 || rej[0].Index != 3 || !strings.Contains(rej[0].Error, "limit of 3") {
		t.Fatalf("rejections %+v, want messages 3 and 4 refused by the event-name limit", rej)
	}
	// Known names still go through after the limit is reached.
	if rej := e.send(track("u2", "", "user-0")); rej != nil {
		t.Fatalf("known event name refused: %v", rej)
	}
	rej = e.send(identify("u1", "", map[string]any{"a": 1.0, "b": 2.0}), identify("u1", "", map[string]any{"c": 3.0}))
	if len(rej) != 1 || rej[0].Index != 1 || !strings.Contains(rej[0].Error, "3 traits, over the limit of 2") {
		t.Fatalf("rejections %+v, want the third trait refused", rej)
	}
	if p := e.user("u1"); len(p.Traits) != 2 {
		t.Errorf("traits %v: the refused message changed the profile", p.Traits)
	}
	big := track("u3", "", "user-0")
	big.Properties = map[string]any{"x": 1.0, "y": 2.0, "z": 3.0}
	if rej := e.send(big); len(rej) != 1 || !strings.Contains(rej[0].Error, "3 properties") {
		t.Fatalf("rejections %+v, want too many properties", rej)
	}
	if e.user("u3") != nil {
		t.Error("a refused message created its profile")
	}
	// Every rejection is in the dead-letter log, in order.
	rs, err := store.Rejections(e.st.DB(), e.ws.Num, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 || rs[0].Seq != 1 || rs[3].Seq != 4 {
		t.Errorf("dead letters %+v, want 4 with seqs 1..4", rs)
	}
}

func TestDeleteUser(t *testing.T) {
	e := newEnv(t, config.Default().Limits)
	e.send(track("", "a1", "E1"), track("u1", "a1", "E2"), track("u2", "", "E3"), identify("", "a2", map[string]any{"x": 1.0}), alias("a2", "u1"))
	found, err := e.g.DeleteUser(context.Background(), e.ws, "a2")
	if err != nil || !found {
		t.Fatalf("delete: %v %v", found, err)
	}
	for _, id := range []string{"a1", "u1", "a2"} {
		if e.user(id) != nil {
			t.Errorf("%q still resolves after deletion", id)
		}
	}
	var left []string
	store.ScanEvents(context.Background(), e.st.DB(), e.ws.Num, func(ev store.StoredEvent) error {
		left = append(left, ev.Name)
		return nil
	})
	if !slices.Equal(left, []string{"E3"}) {
		t.Errorf("events left %v, want only u2's E3", left)
	}
	if found, _ := e.g.DeleteUser(context.Background(), e.ws, "nobody"); found {
		t.Error("deleting an unknown id reported found")
	}
	// The id can be used again: it starts a new, empty profile.
	e.send(track("u1", "", "E4"))
	if got := e.events("u1"); !slices.Equal(got, []string{"E4"}) {
		t.Errorf("events of the new u1 %v", got)
	}
}

func TestWorkspaceIsolation(t *testing.T) {
	e := newEnv(t, config.Default().Limits)
	other, _, err := e.g.CreateWorkspace(context.Background(), "other", Keys{})
	if err != nil {
		t.Fatal(err)
	}
	e.send(identify("u1", "", map[string]any{"ws": "default"}))
	if _, ok, _ := store.ResolveID(e.st.DB(), other.Num, "u1"); ok {
		t.Fatal("a user of one workspace resolves in another")
	}
	if _, _, err := e.g.CreateWorkspace(context.Background(), "other", Keys{}); err == nil {
		t.Error("creating a workspace twice succeeded")
	}
}

// openOn opens a store on fs (kept across restarts) and an ingester over
// it with the default limits.
func openOn(t *testing.T, fs vfs.FS) (*store.Store, *Ingester) {
	t.Helper()
	st, err := store.Open("", store.Options{FS: fs, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(st, Options{Limits: config.Default().Limits, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return st, g
}

func TestRestartKeepsState(t *testing.T) {
	fs := vfs.NewMem()
	open := func() (*store.Store, *Ingester) { return openOn(t, fs) }
	st, g := open()
	ws, _, err := g.CreateWorkspace(context.Background(), "default", Keys{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, g: g, ws: ws}
	e.send(track("", "a1", "E1"), track("u1", "", "E2"), track("u1", "a1", "E3"))
	g.Close()
	st.Close()

	st, g = open()
	defer st.Close()
	defer g.Close()
	ws, ok := g.WorkspaceByName("default")
	if !ok {
		t.Fatal("workspace lost on restart")
	}
	e = &env{t: t, st: st, g: g, ws: ws}
	e.send(track("u2", "", "E4")) // new numbers must not collide with old ones
	if got := e.events("a1"); !slices.Equal(got, []string{"E1", "E2", "E3"}) {
		t.Errorf("events after restart %v", got)
	}
	if got := e.events("u2"); !slices.Equal(got, []string{"E4"}) {
		t.Errorf("u2 events %v", got)
	}
	if !ws.Schema.HasEvent("E1") {
		t.Error("schema lost on restart")
	}
}
