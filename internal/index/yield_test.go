package index

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
)

// TestYieldingScanWithWriter runs scans that let the writer in after
// every block while the writer appends to the head (widening its id
// columns past 256 and then 65,536 values, moving the last block's
// bounds), seals and checkpoints parts, and drops them by retention; the
// scans are split over three workers, which read while the scan's holder
// of the lock has let it go. Run
// with -race: a scan must read only what it captured, and no part may be
// unmapped under it.
func TestYieldingScanWithWriter(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	x := New()
	x.Persist(1, LoadOptions{Dir: t.TempDir(), SealEvents: 3000})
	x.SetScanYield(1)
	x.SetScanParallel(3, 1, 0) // workers too: they read while the lock is let go
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seq := uint64(0)
	batch := func(n int, at time.Time) *ingest.Changes {
		c := &ingest.Changes{}
		for i := range n {
			seq++
			c.Events = append(c.Events, ingest.EventAdded{Num: uint32(seq % 500), Seq: seq, Name: "view",
				Timestamp: at.Add(time.Duration(i) * time.Millisecond), Properties: map[string]any{"sku": fmt.Sprint("s", seq), "price": float64(seq % 50)}})
		}
		return c
	}
	for p := range uint32(500) {
		x.Apply(&ingest.Changes{Profiles: []ingest.ProfileChange{{Num: p, NewID: fmt.Sprint("u", p), New: map[string]any{"plan": "pro"}}}})
	}
	for d := range 10 {
		x.Apply(batch(2000, t0.Add(time.Duration(d)*time.Hour)))
	}
	if err := x.Checkpoint(db, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	n, err := condition.Parse([]byte(`{"event":"view","where":[{"property":"price","op":"lt","value":25}],"count":{"op":"gte","value":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the writer
		for d := 10; ; d++ {
			select {
			case <-stop:
				return
			default:
			}
			x.Apply(batch(700, t0.Add(time.Duration(d)*time.Hour)))
			if d%5 == 0 {
				if err := x.Checkpoint(db, func() error { return nil }); err != nil {
					t.Error(err)
					return
				}
			}
			if d%7 == 0 {
				x.Retain(t0.Add(time.Duration(d-6) * time.Hour))
			}
		}
	})
	scans := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) || scans < 20; scans++ {
		x.RLock()
		bm := x.EventYielding(ctx, n, t0.Add(1000*time.Hour))
		if !bm.IsEmpty() && bm.Maximum() >= 500 {
			t.Errorf("scan %d answers profile %d, beyond those that exist", scans, bm.Maximum())
		}
		x.RUnlock()
	}
	close(stop)
	wg.Wait()
	x.Close()
}
