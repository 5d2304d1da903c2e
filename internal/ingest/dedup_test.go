package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// submitIDs submits one track event per messageId as one submission, and
// returns how many were accepted and how many were duplicates.
func submitIDs(t *testing.T, g *Ingester, ws *Workspace, ids ...string) (accepted, dups int) {
	t.Helper()
	res, err := g.Submit(context.Background(), ws, "test", trackItems(ids))
	if err != nil {
		t.Fatal(err)
	}
	return res.Accepted, res.Duplicates
}

func trackItems(ids []string) []message.Item {
	items := make([]message.Item, len(ids))
	for i, id := range ids {
		m := &model.Message{Type: model.Track, UserID: "u1", Event: "E", MessageID: id, Timestamp: t0, ReceivedAt: t0}
		items[i] = message.Item{Index: i, MessageID: id, Msg: m, Raw: []byte(`{}`)}
	}
	return items
}

// TestDedupExact: a messageId is accepted once, whether it comes again in
// the same submission, in another submission of the same commit group
// (still in the group's batch, not yet in the store), in a later group,
// among ids that sort before and after it, or after a restart.
func TestDedupExact(t *testing.T) {
	fs := vfs.NewMem()
	open := func() (*store.Store, *Ingester) { return openOn(t, fs) }
	st, g := open()
	ws, _, err := g.CreateWorkspace(context.Background(), "default", Keys{})
	if err != nil {
		t.Fatal(err)
	}
	if a, d := submitIDs(t, g, ws, "m-5", "m-1", "m-5", "m-3"); a != 3 || d != 1 {
		t.Errorf("one submission: %d accepted, %d duplicates; want 3, 1", a, d)
	}

	// Two submissions of the same ids in one commit group: hold the
	// applier in a Run job until both are queued behind it.
	holding, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- g.Run(context.Background(), ws, func(*pebble.Batch) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	type result struct{ a, d int }
	results := make(chan result, 2)
	for range 2 {
		go func() {
			res, err := g.Submit(context.Background(), ws, "test", trackItems([]string{"m-7", "m-1", "m-8"}))
			if err != nil {
				t.Error(err)
			}
			results <- result{res.Accepted, res.Duplicates}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(g.jobs) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the submissions were not queued within 10 s")
		}
		time.Sleep(time.Millisecond) // polling a queue, with a deadline
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	r1, r2 := <-results, <-results
	if r1.a+r2.a != 2 || r1.d+r2.d != 4 {
		t.Errorf("same group: %+v and %+v; want 2 accepted (m-7, m-8) and 4 duplicates in all", r1, r2)
	}

	if a, d := submitIDs(t, g, ws, "m-0", "m-3", "m-9", "m-8", "m-6"); a != 3 || d != 2 {
		t.Errorf("a later group: %d accepted, %d duplicates; want 3, 2", a, d)
	}
	g.Close()
	st.Close()

	st, g = open()
	defer st.Close()
	defer g.Close()
	ws, _ = g.WorkspaceByName("default")
	var ids []string
	for _, i := range []int{0, 1, 3, 5, 6, 7, 8, 9} { // every id sent so far
		ids = append(ids, fmt.Sprintf("m-%d", i))
	}
	if a, d := submitIDs(t, g, ws, append(ids, "m-10")...); a != 1 || d != len(ids) {
		t.Errorf("after a restart: %d accepted, %d duplicates; want 1 (m-10), %d", a, d, len(ids))
	}
	e := &env{t: t, st: st, g: g, ws: ws}
	if got := e.events("u1"); len(got) != len(ids)+1 {
		t.Errorf("%d events stored, want %d (each id once)", len(got), len(ids)+1)
	}
}
