package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// journalRun commits random changes to x (opened on an empty store, so
// its base is the checkpoint of nothing), checkpointing the event columns
// after commits 3 and 8, 12 commits in all. write journals one commit.
func journalRun(t *testing.T, db *pebble.DB, x *Index, ws uint32, seed uint64, write func(*pebble.Batch, *ingest.Changes)) {
	t.Helper()
	g := &changeGen{r: rand.New(rand.NewPCG(seed, seed)), traits: map[uint32]map[string]any{}, now: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	for i := range 12 {
		c := g.commit()
		b := db.NewBatch()
		for _, e := range c.Events {
			js, _ := json.Marshal(e.Properties)
			b.Set(store.EventKey(ws, store.Day(e.Timestamp), e.Num, e.Timestamp, e.Seq), store.EncodeEvent(e.Name, "", js), nil)
		}
		x.Apply(c)
		write(b, c)
		b.Set(store.CountersKey(ws), store.EncodeCounters(store.Counters{EventSeq: g.seq}), nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if i == 3 || i == 8 {
			if err := x.Checkpoint(db, func() error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if x.baseFile == "" || x.ckptSeq <= x.baseSeq || x.jseq <= x.ckptSeq {
		t.Fatalf("the run must leave a base (%q at %d), a later checkpoint (%d) and entries after it (%d)", x.baseFile, x.baseSeq, x.ckptSeq, x.jseq)
	}
}

// journalOf journals a commit to x as the applier does.
func journalOf(t *testing.T, x *Index) func(*pebble.Batch, *ingest.Changes) {
	return func(b *pebble.Batch, c *ingest.Changes) {
		if err := x.Journal(b, c); err != nil {
			t.Fatal(err)
		}
	}
}

// reopensEqual opens the index of ws in db again, as a start does, and
// fails unless it used its files (logged: opts' log) and holds what x
// holds.
func reopensEqual(t *testing.T, db *pebble.DB, ws uint32, opts LoadOptions, logged *bytes.Buffer, x *Index) {
	t.Helper()
	logged.Reset()
	y, err := Open(context.Background(), db, ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if strings.Contains(logged.String(), "unusable") {
		t.Fatalf("the checkpoint was unusable:\n%s", logged.String())
	}
	if a, b := x.dump(), y.dump(); a != b {
		t.Fatalf("the reopened index differs:\n%s", firstDiff(a, b))
	}
}

// journalKeys lists the seqs of a workspace's keys of one journal kind.
func journalKeys(t *testing.T, db *pebble.DB, key func(uint32, uint64) []byte, ws uint32) []uint64 {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: key(ws, 0), UpperBound: key(ws, 1<<63)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var seqs []uint64
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		seqs = append(seqs, binary.BigEndian.Uint64(k[len(k)-8:]))
	}
	return seqs
}

// TestJournalEventsTrimmedByCheckpoint: the journal keeps an entry's
// profiles' side until the next base and its events only until the next
// checkpoint of the event columns, so a start after many checkpoints
// reads no event it does not apply; reopened, the index is the same.
func TestJournalEventsTrimmedByCheckpoint(t *testing.T) {
	db := memDB(t)
	const ws = 6
	x, opts, logged := openLogged(t, db, ws, 5)
	defer x.Close()
	journalRun(t, db, x, ws, 11, journalOf(t, x))
	entries := journalKeys(t, db, store.JournalKey, ws)
	if len(entries) == 0 || entries[0] != x.baseSeq+1 || entries[len(entries)-1] != x.jseq {
		t.Fatalf("entries %v: want %d through %d (after the base)", entries, x.baseSeq+1, x.jseq)
	}
	evs := journalKeys(t, db, store.JournalEventsKey, ws)
	if len(evs) == 0 {
		t.Fatal("no entry after the checkpoint has its events record")
	}
	for _, s := range evs {
		if s <= x.ckptSeq {
			t.Fatalf("events of entry %d kept after the checkpoint through %d: %v", s, x.ckptSeq, evs)
		}
	}
	reopensEqual(t, db, ws, opts, logged, x)
}

// TestJournalEventsMissingIsDamage: an entry after the checkpoint whose
// events record is gone is damage: the start names it and rebuilds.
func TestJournalEventsMissingIsDamage(t *testing.T) {
	db := memDB(t)
	const ws = 7
	x, opts, logged := openLogged(t, db, ws, 0)
	defer x.Close()
	journalRun(t, db, x, ws, 12, journalOf(t, x))
	evs := journalKeys(t, db, store.JournalEventsKey, ws)
	if len(evs) == 0 {
		t.Fatal("no events record after the checkpoint")
	}
	if err := db.Delete(store.JournalEventsKey(ws, evs[0]), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	logged.Reset()
	y, err := Open(context.Background(), db, ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if !strings.Contains(logged.String(), "unusable") || !strings.Contains(logged.String(), "record is missing") {
		t.Fatalf("the missing events were not reported:\n%s", logged.String())
	}
}

// TestJournalWholeEntriesStillRead: entries written before the events
// had a record of their own (kind 'c', events inline) replay as before,
// through the base's profiles' side and after the checkpoint in full.
func TestJournalWholeEntriesStillRead(t *testing.T) {
	db := memDB(t)
	const ws = 8
	x, opts, logged := openLogged(t, db, ws, 3)
	defer x.Close()
	journalRun(t, db, x, ws, 13, func(b *pebble.Batch, c *ingest.Changes) {
		x.jseq++
		if err := b.Set(store.JournalKey(ws, x.jseq), encodeWhole(t, c), nil); err != nil {
			t.Fatal(err)
		}
	})
	reopensEqual(t, db, ws, opts, logged, x)
}

// encodeWhole encodes c as entries were before the split (kind 'c').
func encodeWhole(t *testing.T, c *ingest.Changes) []byte {
	b, err := encodeProfiles(c)
	if err != nil {
		t.Fatal(err)
	}
	// The profiles' side is the same; the count and top are replaced by
	// the events themselves.
	r := &binReader{b: b[1:]}
	decodeProfiles(r, &ingest.Changes{})
	b = b[:len(b)-len(r.b)]
	b[0] = journalChanges
	return append(b, encodeEvents(c.Events)...)
}
