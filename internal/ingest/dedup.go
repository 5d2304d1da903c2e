package ingest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/store"
)

// Deduplication: a messageId accepted before in the workspace is
// acknowledged and ignored. The store's `m ws messageId` keys are the
// truth, and the answer is exact.
//
// One Get per message was the applier's largest single cost (~30%): each
// builds an iterator over the indexed batch, every memtable and every
// level, and seeks each from scratch. Instead, the ids of a submission are
// looked up together before its messages are applied: sorted, on one
// iterator over the committed store, so the iterator is built once and
// each seek goes forward from the last (Pebble's seek-using-next; the
// sstables' bloom filters answer for the levels). The committed store does
// not hold the ids of this commit group, which are still in its batch:
// tx.added has them.

// storedIDs reports, for each item, whether its messageId was in the
// store when the group began (nil when no item has one). Only the
// applier writes dedup keys, so nothing can add one in between.
func (t *tx) storedIDs(items []message.Item) ([]bool, error) {
	idx := make([]int, 0, len(items))
	for i := range items {
		if it := &items[i]; it.Err == nil && it.Msg != nil && it.Msg.MessageID != "" {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, nil
	}
	slices.SortFunc(idx, func(a, b int) int {
		return strings.Compare(items[a].Msg.MessageID, items[b].Msg.MessageID)
	})
	lo, hi := store.MsgIDRange(t.w.Num)
	it, err := t.g.st.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("dedup lookup: %w", err)
	}
	stored := make([]bool, len(items))
	key := slices.Clone(lo)
	for _, i := range idx {
		key = append(key[:len(lo)], items[i].Msg.MessageID...)
		// The whole key is the prefix (the default comparer): a valid
		// position is an exact match, but compare to be sure.
		stored[i] = it.SeekPrefixGE(key) && bytes.Equal(it.Key(), key)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("dedup lookup: %w", err)
	}
	return stored, nil
}

// seen reports whether item i's message was accepted before: in the
// store when the group began (stored, from storedIDs) or earlier in this
// group.
func (t *tx) seen(stored []bool, i int, id string) bool {
	if id == "" {
		return false
	}
	if stored != nil && stored[i] {
		return true
	}
	_, ok := t.added[id]
	return ok
}
