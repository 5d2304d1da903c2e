package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// Persisted reports whether the index keeps a journal (Persist, Open).
func (x *Index) Persisted() bool { return x.dir != "" }

// JournalSeq is the seq of the last journal entry written or replayed (0
// for an index kept in memory only). The caller is the index's writer.
func (x *Index) JournalSeq() uint64 { return x.jseq }

// IDChange is a profile's canonical id before and after some journal
// entries ("" when it did not exist before, or was merged away or deleted
// by them).
type IDChange struct{ Old, New string }

// Touched is what some journal entries did to profiles.
type Touched struct {
	// Nums are the profile numbers they created, changed, merged,
	// deleted or added events to, sorted and without repeats.
	Nums []uint32
	// IDs are the ids of the profiles they changed.
	IDs map[uint32]IDChange
	// Complete is false when some of the entries are no longer stored
	// (a base or a rebuild trimmed them past what its caller kept).
	Complete bool
}

// JournalTouched reads the journal entries after seq after, through
// through: what a reader of the journal's commits (segment membership)
// has to look at again when it missed them.
func (x *Index) JournalTouched(r pebble.Reader, after, through uint64) (Touched, error) {
	tc := Touched{IDs: map[uint32]IDChange{}, Complete: true}
	if x.dir == "" || through <= after {
		return tc, nil
	}
	ids := tc.IDs
	found := uint64(0)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: store.JournalKey(x.ws, after+1), UpperBound: store.JournalKey(x.ws, through+1)})
	if err != nil {
		return Touched{}, fmt.Errorf("read index journal: %w", err)
	}
	defer it.Close()
	var out []uint32
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		found++
		if len(v) == 0 || (v[0] != journalProfiles && v[0] != journalChanges) {
			continue // a retain, or empty (replay reports it)
		}
		c := &ingest.Changes{}
		br := &binReader{b: v[1:]}
		decodeProfiles(br, c)
		if v[0] == journalChanges {
			decodeEvents(br, c, false)
		} else if n := br.uvarint(); n > 0 && br.err == nil {
			if err := readEventNums(r, x.ws, seq, c); err != nil {
				return Touched{}, err
			}
		}
		if br.err != nil {
			return Touched{}, fmt.Errorf("index journal entry %d: %w", seq, br.err)
		}
		for _, m := range c.Merges {
			out = append(out, m.Src, m.Dst)
		}
		out = append(out, c.Deleted...)
		for _, p := range c.Profiles {
			out = append(out, p.Num)
			ch, seen := ids[p.Num]
			if !seen {
				ch.Old = p.OldID
			}
			ch.New = p.NewID
			ids[p.Num] = ch
		}
		for _, e := range c.Events {
			out = append(out, e.Num)
		}
	}
	if err := it.Error(); err != nil {
		return Touched{}, fmt.Errorf("read index journal: %w", err)
	}
	slices.Sort(out)
	tc.Nums, tc.Complete = slices.Compact(out), found == through-after
	return tc, nil
}

// readEventNums adds to c the events (numbers only) of journal entry seq,
// when their record is still stored.
func readEventNums(r pebble.Reader, ws uint32, seq uint64, c *ingest.Changes) error {
	v, closer, err := r.Get(store.JournalEventsKey(ws, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("index journal entry %d: read its events: %w", seq, err)
	}
	defer closer.Close()
	br := &binReader{b: v}
	decodeEvents(br, c, false)
	if br.err != nil {
		return fmt.Errorf("index journal entry %d: its events: %w", seq, br.err)
	}
	return nil
}
