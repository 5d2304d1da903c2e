package bench

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// LoadStats describes one load of a data set into an index.
type LoadStats struct {
	Profiles int
	Events   int
	// Wall is the whole load, generation included; Apply is the part spent
	// in index.Apply.
	Wall, Apply time.Duration
	// HeapBefore and HeapAfter are runtime.MemStats.HeapInuse after a
	// garbage collection, before the load and after it (the generator's
	// messages released).
	HeapBefore, HeapAfter uint64
}

// IndexBytes is the heap the index holds.
func (s LoadStats) IndexBytes() uint64 {
	if s.HeapAfter < s.HeapBefore {
		return 0
	}
	return s.HeapAfter - s.HeapBefore
}

// BytesPerProfile is the index memory per profile.
func (s LoadStats) BytesPerProfile() float64 {
	if s.Profiles == 0 {
		return 0
	}
	return float64(s.IndexBytes()) / float64(s.Profiles)
}

// HeapInuse collects garbage and returns runtime.MemStats.HeapInuse.
func HeapInuse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// LoadOptions tune LoadCohort.
type LoadOptions struct {
	// Batch is the number of messages per index.Apply (default 10,000).
	Batch int
	// MaxHeap, when not zero, stops the load with an error once the live
	// Go heap exceeds it (checked every batch; a heap over it is collected
	// before deciding), so that a run too large for the machine fails
	// cleanly instead of being killed. Set GOMEMLIMIT below the machine's
	// memory too: the collector's default goal is twice the live heap.
	MaxHeap uint64
	// Progress, when not nil, is called about every ten million events.
	Progress func(events int, heap uint64)
	// Store, when its Every is set, persists the index while loading, as
	// the server does (IndexStore).
	Store *IndexStore
}

// LoadCohort builds an index of d straight from the generated messages:
// each batch becomes one ingest.Changes applied with index.Apply, as the
// ingestion path's change feed would deliver it, without HTTP or the
// store. Profile numbers are the generator's profile indexes (see
// Profile).
func LoadCohort(ctx context.Context, d Data, o LoadOptions) (*index.Index, LoadStats, error) {
	st := LoadStats{Profiles: d.Profiles, HeapBefore: HeapInuse()}
	ix := index.New()
	persist := o.Store != nil && o.Store.Every > 0
	if persist {
		o.Store.attach(ix)
	}
	start := time.Now()
	var apply time.Duration
	var seq uint64
	loaded, reported := 0, 0
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	n, err := d.WalkAhead(ctx, o.Batch, Sink{
		Profiles: func(_ context.Context, ps []Profile) error {
			c := &ingest.Changes{Profiles: make([]ingest.ProfileChange, len(ps))}
			for i, p := range ps {
				c.Profiles[i] = ingest.ProfileChange{Num: p.Num, NewID: p.ID, New: p.Traits}
			}
			t := time.Now()
			ix.Apply(c)
			apply += time.Since(t)
			if persist {
				return o.Store.committed(ix, c)
			}
			return nil
		},
		Events: func(_ context.Context, es []Event, patches []Patch) error {
			c := &ingest.Changes{Events: make([]ingest.EventAdded, len(es))}
			for i, e := range es {
				seq++
				c.Events[i] = ingest.EventAdded{Num: e.Num, Seq: seq, Name: e.Name, Timestamp: e.Time, Properties: e.Props}
			}
			for _, p := range patches {
				// Only the patched keys change: Old holds none of them, so
				// the index adds the new values and leaves the others be.
				c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: p.Num, OldID: p.ID, NewID: p.ID, Old: map[string]any{}, New: p.Traits})
			}
			t := time.Now()
			ix.Apply(c)
			apply += time.Since(t)
			if persist {
				if err := o.Store.committed(ix, c); err != nil {
					return err
				}
			}
			loaded += len(es)
			if o.MaxHeap > 0 || (o.Progress != nil && loaded-reported >= 10_000_000) {
				h := heap()
				if o.Progress != nil && loaded-reported >= 10_000_000 {
					o.Progress(loaded, h)
					reported = loaded
				}
				if o.MaxHeap > 0 && h > o.MaxHeap {
					// Garbage counts until it is collected: decide on the live heap.
					runtime.GC()
					h = heap()
				}
				if o.MaxHeap > 0 && h > o.MaxHeap {
					return fmt.Errorf("the heap reached %.2f GiB after %d of %d events, over the limit of %.2f GiB",
						float64(h)/(1<<30), loaded, d.Events, float64(o.MaxHeap)/(1<<30))
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, st, fmt.Errorf("load cohort index: %w", err)
	}
	st.Events = n
	st.Wall = time.Since(start)
	st.Apply = apply
	st.HeapAfter = HeapInuse()
	runtime.KeepAlive(ix)
	return ix, st, nil
}
