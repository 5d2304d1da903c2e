package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// TestListenersCommitApart checks the two listeners' batches: OnRecord
// writes into the group's batch (it commits with the messages), OnApply
// into another, committed after it and before the answer. When OnApply
// fails, the messages and OnRecord's writes are stored (as after a crash
// between the two commits), OnApply's are not, the submission fails and
// ingestion stops.
func TestListenersCommitApart(t *testing.T) {
	st, err := store.Open("", store.Options{FS: vfs.NewMem(), CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var fail atomic.Bool
	var recBatch, appBatch *pebble.Batch
	g, err := New(st, Options{Limits: config.Default().Limits, Now: func() time.Time { return t0 },
		OnRecord: func(w *Workspace, c *Changes, b *pebble.Batch) error {
			recBatch = b
			return b.Set([]byte("\x00rec-"+c.Events[0].Name), nil, nil)
		},
		OnApply: func(w *Workspace, c *Changes, b *pebble.Batch) error {
			appBatch = b
			if fail.Load() {
				return errors.New("stopped")
			}
			return b.Set([]byte("\x00app-"+c.Events[0].Name), nil, nil)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ws, _, err := g.CreateWorkspace(ctx, "default", Keys{})
	if err != nil {
		t.Fatal(err)
	}
	send := func(id, event string) error {
		m := &model.Message{Type: model.Track, MessageID: id, UserID: "u1", Event: event, Timestamp: t0, ReceivedAt: t0}
		_, err := g.Submit(ctx, ws, "test", []message.Item{{MessageID: id, Msg: m, Raw: []byte(`{}`)}})
		return err
	}
	has := func(key string) bool {
		_, ok, err := store.Get(st.DB(), []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if err := send("m1", "A"); err != nil {
		t.Fatal(err)
	}
	if !has("\x00rec-A") || !has("\x00app-A") || recBatch == appBatch {
		t.Fatalf("after an answer: record written %v, apply written %v, one batch %v; want both written, two batches",
			has("\x00rec-A"), has("\x00app-A"), recBatch == appBatch)
	}
	fail.Store(true)
	if err := send("m2", "B"); err == nil {
		t.Fatal("the submission succeeded though OnApply failed")
	}
	if !has("\x00rec-B") || has("\x00app-B") || !has(string(store.MsgIDKey(ws.Num, "m2"))) {
		t.Fatalf("after OnApply failed: record written %v, apply written %v, message stored %v; want the first and last only",
			has("\x00rec-B"), has("\x00app-B"), has(string(store.MsgIDKey(ws.Num, "m2"))))
	}
	if err := send("m3", "C"); err == nil {
		t.Fatal("ingestion went on after a failed group")
	}
	if err := g.Close(); err == nil {
		t.Fatal("Close does not report the failure")
	}
}
