package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// TestOverloadRefusesAndStoresNothing: while the applier is stuck, a
// submission of messages waits at most MaxWait and is then refused with
// ErrOverloaded; nothing of it is stored, even after the applier
// recovers, while internal jobs and the submissions it took are applied.
func TestOverloadRefusesAndStoresNothing(t *testing.T) {
	e := newEnvWith(t, Options{Limits: config.Default().Limits, MaxWait: 50 * time.Millisecond})
	st, g, ws := e.st, e.g, e.ws
	ctx := context.Background()
	item := func(id string) []message.Item {
		m := &model.Message{Type: model.Track, UserID: id, Event: "E", MessageID: id, Timestamp: t0, ReceivedAt: t0}
		return []message.Item{{MessageID: id, Msg: m, Raw: []byte(`{}`)}}
	}
	// The applier is held inside a Run job until release is closed.
	release, held := make(chan struct{}), make(chan struct{})
	runDone := make(chan error, 1)
	go func() {
		runDone <- g.Run(ctx, ws, func(*pebble.Batch) error { close(held); <-release; return nil })
	}()
	<-held
	// Enough submissions to fill the queue and wait behind it.
	const n = 300
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := g.Submit(ctx, ws, "test", item(fmt.Sprint("late", i)))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a submission behind a stuck applier answered %v, want ErrOverloaded", err)
		}
	}
	close(release)
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if _, err := g.Submit(ctx, ws, "test", item("after")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	for i := range n {
		if _, ok, _ := store.ResolveID(st.DB(), ws.Num, fmt.Sprint("late", i)); ok {
			t.Fatalf("refused submission late%d was stored", i)
		}
	}
	if _, ok, _ := store.ResolveID(st.DB(), ws.Num, "after"); !ok {
		t.Fatal("the submission after recovery was not stored")
	}
}
