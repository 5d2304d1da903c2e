package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// PersistStats describes an index checkpointed to disk and opened again.
type PersistStats struct {
	Checkpoint time.Duration // writing every part and the checkpoint file
	// MetaOnly is a second checkpoint with no new event: the event
	// columns' checkpoint file alone, what every periodic checkpoint
	// writes on the applier.
	MetaOnly time.Duration
	// Merge is the background merge of a new base file (the profiles'
	// side), started after a few such checkpoints.
	Merge     time.Duration
	Open      time.Duration // index.Open from the files (a restart's index part)
	FileBytes int64         // the index directory's size
	// HeapAfter is HeapInuse after a collection, with the reopened index
	// (its parts mapped, not in the heap) the only index alive.
	HeapAfter uint64
	// RSS of the process after that collection: anonymous memory and
	// mapped files' pages (the page cache of the parts read so far).
	RSSAnon, RSSFile uint64
}

// PersistAndReopen checkpoints ix (built by LoadCohort) into dir, drops
// it, and opens it again from the files, as a restart does. The journal
// and the store's counters live in an empty in-memory store: the
// checkpoint covers everything.
func PersistAndReopen(ctx context.Context, ix *index.Index, dir string) (*index.Index, PersistStats, error) {
	var st PersistStats
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		return nil, st, err
	}
	defer db.Close()
	const ws = 1
	o := index.LoadOptions{Dir: dir}
	ix.Persist(ws, o)
	t := time.Now()
	if err := ix.Checkpoint(db, func() error { return nil }); err != nil {
		return nil, st, fmt.Errorf("checkpoint: %w", err)
	}
	st.Checkpoint = time.Since(t)
	t = time.Now()
	if err := ix.Checkpoint(db, func() error { return nil }); err != nil {
		return nil, st, fmt.Errorf("checkpoint: %w", err)
	}
	st.MetaOnly = time.Since(t)
	// One journaled change, so that the base has something to merge.
	if id, ok := ix.ID(1); ok {
		c := &ingest.Changes{Profiles: []ingest.ProfileChange{{Num: 1, OldID: id, NewID: id, New: map[string]any{"bench_merged": true}}}}
		b := db.NewBatch()
		ix.Apply(c)
		if err := ix.Journal(b, c); err != nil {
			return nil, st, err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return nil, st, err
		}
	}
	for range 3 { // enough checkpoints since the base to start a merge
		if err := ix.Checkpoint(db, func() error { return nil }); err != nil {
			return nil, st, fmt.Errorf("checkpoint: %w", err)
		}
	}
	ix.WaitMerge()
	if st.Merge, err = ix.FinishMerge(db); err != nil {
		return nil, st, fmt.Errorf("merge: %w", err)
	}
	ix.Close()
	runtime.GC()
	t = time.Now()
	re, err := index.Open(ctx, db, ws, o)
	if err != nil {
		return nil, st, fmt.Errorf("open: %w", err)
	}
	st.Open = time.Since(t)
	st.HeapAfter = HeapInuse()
	st.RSSAnon = ProcKB("/proc/self/status", "RssAnon") << 10
	st.RSSFile = ProcKB("/proc/self/status", "RssFile") << 10
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			st.FileBytes += fi.Size()
		}
		return nil
	})
	return re, st, nil
}

// ProcKB reads a "Name: N kB" field of a /proc file (0 when absent).
func ProcKB(path, name string) uint64 {
	var v uint64
	fmt.Sscanf(procField(path, name), "%d", &v)
	return v
}
