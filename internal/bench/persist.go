package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
	PartFiles int           // its part files
	// HeapAfter is HeapInuse after a collection, with the reopened index
	// (its parts mapped, not in the heap) the only index alive.
	HeapAfter uint64
	// RSS of the process after that collection: anonymous memory and
	// mapped files' pages (the page cache of the parts read so far).
	RSSAnon, RSSFile uint64
}

// IndexStore is where a benchmark's index persists: its directory, and
// the store of its journal (a Pebble of its own beside the directory, on
// disk as the server's, so that the journal is not in the Go heap; the
// events themselves are not stored, the checkpoints cover them).
type IndexStore struct {
	Dir string
	db  *pebble.DB
	// Every, when not 0, makes LoadCohort persist as the server's applier
	// does: each batch journaled, a checkpoint started once Every events
	// arrived since the last (index.checkpoint_events), its files written
	// in the background and installed at a later batch, with its part
	// merges and merges of the base.
	Every int
	// NoPartMerge turns part merges off, to measure what they buy.
	NoPartMerge bool
	// Unthrottled checkpoints by the event count alone, without the
	// server's hold-back after a slow checkpoint, and waits for each
	// (tests on small data, where the syncs dominate).
	Unthrottled bool
	// Checkpoints counts those finished while loading, Held their time on
	// the loading goroutine (the applier's share), PartMerges the merged
	// parts installed.
	Checkpoints, PartMerges int
	Held                    time.Duration
	// Keep leaves the journal on disk at Close, for a later ReopenIndexStore.
	Keep bool
}

// benchWS is the workspace of a benchmark's persisted index.
const benchWS = 1

// OpenIndexStore makes an IndexStore in dir.
func OpenIndexStore(dir string, every int) (*IndexStore, error) {
	path := filepath.Clean(dir) + ".journal"
	if err := os.RemoveAll(path); err != nil {
		return nil, err
	}
	db, err := pebble.Open(path, &pebble.Options{FS: vfs.Default, Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	return &IndexStore{Dir: dir, db: db, Every: every}, nil
}

// ReopenIndexStore opens the IndexStore a run with Keep left in dir.
func ReopenIndexStore(dir string) (*IndexStore, error) {
	path := filepath.Clean(dir) + ".journal"
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("reopen %s: no journal a kept run left: %w", dir, err)
	}
	db, err := pebble.Open(path, &pebble.Options{FS: vfs.Default, Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", dir, err)
	}
	return &IndexStore{Dir: dir, db: db, Keep: true}, nil
}

// Open opens the index the store holds, as a restart does.
func (s *IndexStore) Open(ctx context.Context) (*index.Index, error) {
	return index.Open(ctx, s.db, benchWS, index.LoadOptions{Dir: s.Dir})
}

// Close closes the journal's store and, unless Keep, deletes it.
func (s *IndexStore) Close() error {
	err := s.db.Close()
	if s.Keep {
		return err
	}
	return errors.Join(err, os.RemoveAll(filepath.Clean(s.Dir)+".journal"))
}

// quietLogger keeps Pebble's informational lines out of a report.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func (s *IndexStore) attach(ix *index.Index) {
	ix.Persist(benchWS, index.LoadOptions{Dir: s.Dir})
	ix.SetPartMerge(!s.NoPartMerge)
}

// committed journals c, applied to ix, and does what the applier does
// after a commit: installs a checkpoint or merge that finished, starts a
// checkpoint when one is due.
func (s *IndexStore) committed(ix *index.Index, c *ingest.Changes) error {
	b := s.db.NewBatch()
	if err := ix.Journal(b, c); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	t := time.Now()
	took, err := ix.FinishCheckpoint(s.db)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if took > 0 {
		s.Checkpoints++
	}
	if _, err := ix.FinishMerge(s.db); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	now, every, start := time.Now(), time.Hour, ix.StartCheckpoint
	if s.Unthrottled { // a day later, an interval never reached, waited for
		now, every, start = now.Add(24*time.Hour), 1000*time.Hour, ix.Checkpoint
	}
	if ix.CheckpointDue(s.Every, every, now) {
		if err := start(s.db, func() error { return nil }); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if s.Unthrottled {
			s.Checkpoints++ // installed by Checkpoint
		}
	}
	s.Held += time.Since(t)
	s.PartMerges = ix.PartMerges()
	return nil
}

// PersistAndReopen checkpoints ix (built by LoadCohort) into the store's
// directory, drops it, and opens it again from the files, as a restart
// does. The checkpoint covers everything, whether the index persisted
// while loading or not.
func PersistAndReopen(ctx context.Context, ix *index.Index, s *IndexStore) (*index.Index, PersistStats, error) {
	var st PersistStats
	db, ws, dir := s.db, uint32(benchWS), s.Dir
	o := index.LoadOptions{Dir: dir}
	if s.Every == 0 {
		s.attach(ix)
	} else if err := ix.Checkpoint(db, func() error { return nil }); err != nil {
		// (With a checkpoint in flight, that one is waited for and
		// installed; the timed ones below are the load's last.)
		return nil, st, fmt.Errorf("checkpoint: %w", err)
	}
	var err error
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
			if strings.HasSuffix(fi.Name(), ".col") {
				st.PartFiles++
			}
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
