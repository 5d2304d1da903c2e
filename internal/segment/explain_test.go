package segment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/store"
)

// TestExplainAgreesWithMembershipAndOracle loads random profiles and
// events through the real path, defines random segments (some referring
// to others), moves the clock so relative windows expire, and asks for
// explanations: member must equal the stored membership, the verdict must
// equal it, and the verdict and every leaf's matched must equal the
// oracle's, evaluated from the raw stored traits and events.
func TestExplainAgreesWithMembershipAndOracle(t *testing.T) {
	ctx := context.Background()
	genNow := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: genNow}
	w := openLive(t, vfs.NewMem(), clk)
	defer w.close()
	g := gen.New(gen.Config{Seed: 11, Profiles: 150, Events: 2500, Now: genNow, Days: 20})
	w.send(t, g.Identifies()...)
	var batch []*model.Message
	for m := g.Next(); m != nil; m = g.Next() {
		if batch = append(batch, m); len(batch) == 500 {
			w.send(t, batch...)
			batch = nil
		}
	}
	w.send(t, batch...)

	r := rand.New(rand.NewPCG(3, 4))
	cg := &condGen{r: rand.New(rand.NewPCG(5, 6))}
	var ids []string
	nodes := map[string]*condition.Node{}
	for i := range 60 {
		src := cg.cond()
		if len(ids) > 0 && i%5 == 0 {
			src = fmt.Sprintf(`{"and":[{"not":{"segment":%q}},%s]}`, ids[r.IntN(len(ids))], src)
		}
		id := fmt.Sprintf("s%d", i)
		if _, err := w.m.Create(ctx, w.ws, id, id, json.RawMessage(src)); err != nil {
			t.Fatalf("create %s: %v", src, err)
		}
		ids = append(ids, id)
		if nodes[id], _ = condition.Parse([]byte(src)); nodes[id] == nil {
			t.Fatal(src)
		}
	}
	w.m.WaitBuilds()
	var users []string
	err := store.ScanProfiles(ctx, w.st.DB(), w.ws.Num, func(num uint32, p *store.ProfileRecord) error {
		users = append(users, p.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked, members, leaves, timed := 0, 0, 0, 0
	for round := range 4 {
		if round > 0 {
			// Time passes without a Tick: explain fires what is due.
			clk.Advance(time.Duration(1+r.IntN(60)) * time.Hour)
		}
		now := clk.Now()
		for range 150 {
			user, id := users[r.IntN(len(users))], ids[r.IntN(len(ids))]
			x, err := w.m.Explain(ctx, w.ws, user, id)
			if err != nil {
				t.Fatalf("explain %s in %s: %v", user, id, err)
			}
			num, _, _ := store.ResolveID(w.st.DB(), w.ws.Num, user)
			stored := slices.Contains(w.m.UserSegments(w.ws, num), id)
			if x.Member != stored || x.Matches != stored {
				t.Fatalf("round %d: %s in %s: member %v, matches %v, stored membership %v", round, user, id, x.Member, x.Matches, stored)
			}
			in := w.oracleInput(t, num)
			n := nodes[id]
			if want := oracle.Match(n, in, now); x.Matches != want {
				seg, _ := w.m.Get(w.ws, id)
				t.Fatalf("round %d: %s in %s %s: explain says %v, the oracle %v", round, user, id, seg.Condition, x.Matches, want)
			}
			crit := oracle.Criteria(n, in, now)
			if len(x.Leaves) != len(crit) {
				t.Fatalf("%s: %d leaves, oracle %d", id, len(x.Leaves), len(crit))
			}
			for j, leaf := range n.Leaves() {
				got := x.Leaves[j]
				if got.Path != leaf.Path || got.Matched != crit[j] {
					t.Fatalf("%s in %s: leaf %q matched %v (value %v), oracle leaf %q %v", user, id, got.Path, got.Matched, got.Value, leaf.Path, crit[j])
				}
				if leaf.Kind == condition.Trait {
					v, _ := model.Lookup(in.Traits, leaf.Name)
					if condition.CanonicalJSON(v) != condition.CanonicalJSON(got.Value) {
						t.Fatalf("%s: trait leaf %q value %v, the profile holds %v", user, leaf.Path, got.Value, v)
					}
				}
				if leaf.Kind == condition.Event && got.Count == nil {
					t.Fatalf("event leaf %q without a count", leaf.Path)
				}
				leaves++
			}
			if x.NextChangeAt != nil {
				timed++
				if !x.NextChangeAt.After(now) {
					t.Fatalf("%s in %s: next change %v is not after now %v", user, id, x.NextChangeAt, now)
				}
			}
			if x.Member {
				members++
			}
			checked++
		}
	}
	if members < checked/10 || members > checked*9/10 || timed == 0 {
		t.Errorf("%d of %d explanations were members, %d had a next change: the sample proves little", members, checked, timed)
	}
	t.Logf("%d explanations (%d members, %d leaves, %d with a next change)", checked, members, leaves, timed)

	if _, err := w.m.Explain(ctx, w.ws, "nobody", ids[0]); !errors.Is(err, segment.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := w.m.Explain(ctx, w.ws, users[0], "nothing"); !errors.Is(err, segment.ErrNotFound) {
		t.Errorf("unknown segment: %v", err)
	}
}

// oracleInput reads a profile's traits, events and stored memberships
// straight from the store and the manager.
func (w *liveWorld) oracleInput(t testing.TB, num uint32) oracle.Input {
	t.Helper()
	p, ok, err := store.ReadProfile(w.st.DB(), w.ws.Num, num)
	if err != nil || !ok {
		t.Fatalf("profile %d: %v %v", num, ok, err)
	}
	in := oracle.Input{Traits: p.Traits}
	for _, n := range w.g.ProfileNums(w.ws, num) {
		err := store.ProfileEvents(context.Background(), w.st.DB(), w.ws.Num, n, func(ev store.StoredEvent) error {
			in.Events = append(in.Events, ev.Event)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	segs := w.m.UserSegments(w.ws, num)
	in.InSegment = func(id string) bool { return slices.Contains(segs, id) }
	return in
}
