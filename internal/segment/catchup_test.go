package segment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/segment"
)

// TestCatchUpAfterLostChanges stops the process, as a crash would,
// between a group's commit and the commit of its membership changes: the
// OnApply listener fails before doing anything, so the store keeps the
// messages and their index journal entry, and nothing of the changes.
// After every such stop the next start must re-evaluate what the lost
// commits touched: replaying the change stream gives every segment the
// members a full evaluation gives, and the stream stays gapless. Events,
// trait changes, merges (identify of an anonymous id, alias) and user
// deletions are lost in turn; every other time the index directory is
// lost too, so the index is rebuilt from the store without its journal.
func TestCatchUpAfterLostChanges(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { catchUpScenario(t, seed) })
	}
}

func catchUpScenario(t *testing.T, seed uint64) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	fs := vfs.NewMem()
	var lose atomic.Bool
	hook := func(o *ingest.Options) {
		apply := o.OnApply
		o.OnApply = func(w *ingest.Workspace, c *ingest.Changes, b *pebble.Batch) error {
			if lose.Load() {
				return errors.New("stopped between the two commits")
			}
			return apply(w, c, b)
		}
	}
	w := openLiveHooked(t, fs, clk, segment.Options{ParallelFrom: 1}, hook)
	defer func() { w.close() }()
	ctx := context.Background()
	for _, s := range [][2]string{
		{"buyers", `{"event":"Order Completed"}`},
		{"pro", `{"trait":"plan","op":"eq","value":"pro"}`},
		{"both", `{"and":[{"segment":"buyers"},{"segment":"pro"}]}`},
		{"quiet", `{"not":{"event":"Page Viewed"}}`},
	} {
		if _, err := w.m.Create(ctx, w.ws, s[0], s[0], json.RawMessage(s[1])); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(seed, 5))
	user := func() string { return fmt.Sprintf("u%d", r.IntN(12)) }
	anon := func() string { return fmt.Sprintf("a%d", r.IntN(12)) }
	n := 0
	msg := func() *model.Message {
		n++
		m := &model.Message{MessageID: fmt.Sprint("m", n), UserID: user()}
		switch r.IntN(6) {
		case 0, 1:
			m.Type, m.Event = model.Track, []string{"Order Completed", "Page Viewed"}[r.IntN(2)]
			if r.IntN(3) == 0 {
				m.UserID, m.AnonymousID = "", anon()
			}
		case 2, 3:
			m.Type, m.Traits = model.Identify, map[string]any{"plan": []string{"pro", "free"}[r.IntN(2)]}
			if r.IntN(3) == 0 {
				m.AnonymousID = anon()
			}
		case 4:
			m.Type, m.PreviousID = model.Alias, anon()
		default:
			m.Type, m.Event = model.Track, "Order Completed"
		}
		return m
	}
	submit := func(msgs ...*model.Message) error {
		items := make([]message.Item, len(msgs))
		for i, m := range msgs {
			m.ReceivedAt, m.Timestamp = clk.Now(), clk.Now()
			items[i] = message.Item{Index: i, MessageID: m.MessageID, Msg: m, Raw: []byte("{}")}
		}
		_, err := w.g.Submit(ctx, w.ws, "test", items)
		return err
	}
	lost := 0
	for step := range 40 {
		clk.Advance(time.Minute)
		if step%5 == 4 { // a group whose membership changes are lost, then a restart
			lose.Store(true)
			var err error
			if r.IntN(4) == 0 {
				_, err = w.g.DeleteUser(ctx, w.ws, user())
			} else {
				err = submit(msg(), msg(), msg())
			}
			if err == nil {
				continue // nothing changed (a deletion of an unknown user)
			}
			lost++
			lose.Store(false)
			w.close()
			if lost%2 == 0 {
				// The index is rebuilt from the store, which trims the
				// journal: the catch-up looks at every profile.
				if err := os.RemoveAll(indexDirFor(t, fs)); err != nil {
					t.Fatal(err)
				}
			}
			w = openLiveHooked(t, fs, clk, segment.Options{ParallelFrom: 1}, hook)
			if got, want := w.replay(t), w.batch(t, clk.Now()); !sameMembersOK(got, want) {
				t.Fatalf("step %d, after the restart: members from the change stream %v, evaluated %v", step, got, want)
			}
			continue
		}
		var msgs []*model.Message
		for range 1 + r.IntN(4) {
			msgs = append(msgs, msg())
		}
		if err := submit(msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if lost < 4 {
		t.Fatalf("only %d groups lost their changes: the scenario tests too little", lost)
	}
	if got, want := w.replay(t), w.batch(t, clk.Now()); !sameMembersOK(got, want) {
		t.Fatalf("members from the change stream %v, evaluated %v", got, want)
	}
}

func sameMembersOK(a, b map[string]map[string]bool) bool {
	_, ok := sameMembers(a, b)
	return ok
}
