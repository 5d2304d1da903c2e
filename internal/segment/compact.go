package segment

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// compactBatch bounds the deletions one committed batch of a compaction
// holds.
const compactBatch = 10_000

// Compaction is what one change-log compaction did.
type Compaction struct {
	Through uint64 // the log is compacted through this seq
	Deleted int    // change records removed
}

// CompactChanges compacts a workspace's change log below a horizon: of the
// changes recorded before `before`, with seq at most bound (the slowest
// sink's cursor) and durable, it keeps only the latest change of each
// (segment, user) and none of segments no longer defined. Seq numbers
// never change, and replaying from seq 0 still yields exactly the current
// members, so the log stays proportional to memberships rather than to
// history.
//
// Membership snapshots are first brought up to the current seq (in the
// applier), so that opening the store never replays compacted history
// onto an older snapshot. The deletion itself runs outside the applier:
// changes at or below the horizon never change again. Its memory is one
// entry per (segment, user) kept.
func (m *Manager) CompactChanges(ctx context.Context, w *ingest.Workspace, before time.Time, bound uint64) (Compaction, error) {
	db := m.st.DB()
	mark, err := store.ReadCompacted(db, w.Num)
	if err != nil {
		return Compaction{}, err
	}
	out := Compaction{Through: mark}
	durable, _ := m.Durable(w.Num)
	bound = min(bound, durable)
	horizon := mark
	var derr error
	err = store.ScanChanges(db, w.Num, mark, func(seq uint64, rec []byte) bool {
		if seq > bound {
			return false
		}
		c, _, err := DecodeChange(rec)
		if err != nil {
			derr = err
			return false
		}
		if !c.At.Before(before) {
			return false
		}
		horizon = seq
		return true
	})
	if err = firstErr(derr, err); err != nil {
		return out, fmt.Errorf("find compaction horizon: %w", err)
	}
	if horizon <= mark {
		return out, nil
	}
	defined, err := m.refreshSnapshots(ctx, w, horizon)
	if err != nil {
		return out, fmt.Errorf("refresh membership snapshots: %w", err)
	}

	seen := map[string]map[string]struct{}{}
	b := db.NewBatch()
	defer func() { b.Close() }()
	pending := 0
	err = store.ScanChangesBack(db, w.Num, horizon, func(seq uint64, rec []byte) bool {
		c, _, err := DecodeChange(rec)
		if err != nil {
			derr = err
			return false
		}
		users := seen[c.Segment]
		if users == nil && defined[c.Segment] {
			users = map[string]struct{}{}
			seen[c.Segment] = users
		}
		if users != nil {
			if _, later := users[c.User]; !later {
				users[c.User] = struct{}{}
				return true // the latest change of (segment, user): kept
			}
		}
		if derr = b.Delete(store.ChangeKey(w.Num, seq), nil); derr != nil {
			return false
		}
		out.Deleted++
		if pending++; pending >= compactBatch {
			if derr = ctx.Err(); derr != nil {
				return false
			}
			if derr = b.Commit(pebble.NoSync); derr != nil {
				return false
			}
			b.Close()
			b, pending = db.NewBatch(), 0
		}
		return true
	})
	if err = firstErr(derr, err); err != nil {
		return out, fmt.Errorf("compact change log: %w", err)
	}
	if err := b.Set(store.CompactedKey(w.Num), binary.BigEndian.AppendUint64(nil, horizon), nil); err != nil {
		return out, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return out, fmt.Errorf("compact change log: %w", err)
	}
	out.Through = horizon
	m.log.Info("change log compacted", "workspace", w.Name, "through_seq", horizon, "deleted", out.Deleted)
	return out, nil
}

// refreshSnapshots writes, in the applier, every built segment's
// membership snapshot at the current seq when it is older than horizon,
// and answers the segments defined.
func (m *Manager) refreshSnapshots(ctx context.Context, w *ingest.Workspace, horizon uint64) (map[string]bool, error) {
	sp := m.space(w)
	defined := map[string]bool{}
	err := m.in.Run(ctx, w, func(b *pebble.Batch) error {
		lv, err := sp.liveState(b)
		if err != nil {
			return err
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		clear(defined)
		for id, s := range sp.segs {
			defined[id] = true
			if !s.built || s.SnapshotSeq >= horizon {
				continue
			}
			snap, err := store.EncodeBitmap(s.members)
			if err != nil {
				return err
			}
			if err := b.Set(store.MembersKey(w.Num, id), snap, nil); err != nil {
				return err
			}
			s.SnapshotSeq = lv.seq
			if err := putRecord(b, w.Num, s.Segment); err != nil {
				return err
			}
		}
		return nil
	})
	return defined, err
}

// Compacted is the seq through which a workspace's change log is
// compacted (0: never): pages reading below it see only the latest change
// of each (segment, user).
func (m *Manager) Compacted(ws uint32) (uint64, error) {
	return store.ReadCompacted(m.st.DB(), ws)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
