package index

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// A periodic checkpoint writes the event columns only: rewriting every
// profile's traits on the applier took seconds at ten million profiles.
// The profiles' side stays in the base file, and the journal since the
// base is kept. Every few checkpoints a merge, on its own goroutine, makes
// a newer base from files alone: it reads the base file into an index of
// its own, applies the profiles' side of the journal entries through the
// last checkpoint (the same apply as a replay), and writes the result.
// The writer then points CURRENT at it and trims the journal. The merge
// shares nothing with the live index: it reads files nobody changes and
// journal entries below the writer's, so it takes no lock of the index.

// defaultMergeEvery is how many checkpoints since the base start a merge.
const defaultMergeEvery = 4

// merge is a newer base being written.
type merge struct {
	name   string // the base file it writes
	seq    uint64 // through this journal entry
	start  time.Time
	cancel context.CancelFunc
	done   outcome
}

// maybeMerge starts a merge when enough checkpoints passed since the base
// and the last merge ended at least twenty times its duration ago (merges
// take at most a twentieth of a core). The caller is the writer, after a
// checkpoint.
func (x *Index) maybeMerge(db *pebble.DB) {
	every := x.mergeEvery
	if every == 0 {
		every = defaultMergeEvery
	}
	if x.merge != nil || x.ckptSeq <= x.baseSeq || x.sinceBase < every ||
		time.Since(x.lastMerge) < 20*x.mergeTook {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &merge{name: fmt.Sprintf("prof-%016x.idx", x.ckptSeq), seq: x.ckptSeq, start: time.Now(), cancel: cancel, done: newOutcome()}
	x.merge = m
	// The goroutine gets copies: the writer goes on changing x.
	dir, ws, base, baseSeq, crashAt := x.dir, x.ws, x.baseFile, x.baseSeq, x.crashAt
	go func() {
		m.done <- writeBase(ctx, db, dir, ws, base, baseSeq, m, crashAt)
	}()
}

// writeBase writes m's base: the base file read, the profiles' side of
// the journal entries after baseSeq through m.seq applied.
func writeBase(ctx context.Context, db pebble.Reader, dir string, ws uint32, base string, baseSeq uint64, m *merge, crashAt func(string) bool) error {
	mf, err := readMeta(filepath.Join(dir, base))
	if err != nil {
		return err
	}
	y := mf.x
	if y.ws != ws || mf.seq != baseSeq {
		return fmt.Errorf("index base %s is not the one named: %w", base, ErrCorrupt)
	}
	y.events = map[string]*eventCol{} // the profiles' side only
	if _, err := y.replay(ctx, db, m.seq, m.seq, func(int) {}); err != nil {
		return err
	}
	if y.jseq != m.seq {
		return fmt.Errorf("index journal ends at %d, before %d: %w", y.jseq, m.seq, ErrCorrupt)
	}
	if err := crashed(crashAt, "merge file"); err != nil {
		return err
	}
	return writeFileSynced(filepath.Join(dir, m.name), func(f *os.File) error {
		return writeMetaFile(f, y.header(m.seq, 0), y.writeProfiles, nil, false)
	})
}

// FinishMerge installs a merge that has finished: CURRENT names its base,
// the journal through it is deleted. It returns how long the merge took
// (0: none finished). It does not wait; the caller is the writer, between
// commits. A merge that failed is reported and dropped (the journal keeps
// everything; the next checkpoints start another).
func (x *Index) FinishMerge(db *pebble.DB) (time.Duration, error) {
	m := x.merge
	if m == nil {
		return 0, nil
	}
	done, err := m.done.ready()
	if !done {
		return 0, nil
	}
	x.merge, x.lastMerge = nil, time.Now()
	x.mergeTook = x.lastMerge.Sub(m.start)
	if err != nil {
		os.Remove(filepath.Join(x.dir, m.name+".tmp"))
		return 0, fmt.Errorf("merge the index base: %w", err)
	}
	if err := x.crash("merge CURRENT"); err != nil {
		return 0, err
	}
	if err := x.writeCurrent(m.name, x.ckptFile); err != nil {
		return 0, err
	}
	return x.mergeTook, x.newBase(db, m.name, m.seq)
}

// WaitMerge waits for a merge under way to finish; FinishMerge then
// installs it. For benchmarks and tests.
func (x *Index) WaitMerge() {
	if m := x.merge; m != nil {
		m.done.wait()
	}
}

// stopMerge cancels a merge under way and waits for it.
func (x *Index) stopMerge() {
	if m := x.merge; m != nil {
		m.cancel()
		m.done.wait() // FinishMerge may still take the outcome
	}
}
