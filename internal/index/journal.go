package index

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// The journal holds, in the store, every change applied to a persisted
// index since its last checkpoint: one entry per commit, written in the
// commit's own batch (so an entry exists exactly when its commit does) and
// deleted once a checkpoint includes it. A start opens the checkpoint and
// applies the entries after it, in order: the same Apply calls, so the
// same index.

// Journal entry kinds.
const (
	// journalProfiles is a commit's changes but its events: merges,
	// deletions, profiles, then how many events it added and one more
	// than their greatest profile number. The events themselves are in a
	// record of their own (store.JournalEventsKey), deleted by the next
	// checkpoint of the event columns: the entry stays until the next
	// base, and a start after many checkpoints reads only this side.
	journalProfiles = 'p'
	journalChanges  = 'c' // a whole ingest.Changes, events included (written before the split; still read)
	journalRetain   = 'r' // a Retain's cut (i64 Unix ns)
)

// Journal records c, just applied, in b (the batch committing it). It
// does nothing for an index kept in memory only. The caller is the
// index's writer.
func (x *Index) Journal(b *pebble.Batch, c *ingest.Changes) error {
	if x.dir == "" {
		return nil
	}
	v, err := encodeProfiles(c)
	if err != nil {
		return err
	}
	if err := x.journal(b, v); err != nil {
		return err
	}
	if len(c.Events) == 0 {
		return nil
	}
	if err := b.Set(store.JournalEventsKey(x.ws, x.jseq), encodeEvents(c.Events), nil); err != nil {
		return fmt.Errorf("index journal: %w", err)
	}
	return nil
}

// JournalRetain records a Retain to from in b.
func (x *Index) JournalRetain(b *pebble.Batch, from time.Time) error {
	if x.dir == "" {
		return nil
	}
	return x.journal(b, binary.LittleEndian.AppendUint64([]byte{journalRetain}, uint64(from.UnixNano())))
}

func (x *Index) journal(b *pebble.Batch, v []byte) error {
	if x.closed {
		return errClosed
	}
	x.jseq++
	if err := b.Set(store.JournalKey(x.ws, x.jseq), v, nil); err != nil {
		return fmt.Errorf("index journal: %w", err)
	}
	return nil
}

// encodeProfiles encodes the entry of c: its profiles' side, and how many
// events it has and their greatest profile number.
func encodeProfiles(c *ingest.Changes) ([]byte, error) {
	b := make([]byte, 0, 64+len(c.Profiles)*64)
	b = append(b, journalProfiles)
	b = binary.AppendUvarint(b, uint64(len(c.Merges)))
	for _, m := range c.Merges {
		b = binary.AppendUvarint(b, uint64(m.Src))
		b = binary.AppendUvarint(b, uint64(m.Dst))
	}
	b = binary.AppendUvarint(b, uint64(len(c.Deleted)))
	for _, n := range c.Deleted {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = binary.AppendUvarint(b, uint64(len(c.Profiles)))
	for _, p := range c.Profiles {
		b = binary.AppendUvarint(b, uint64(p.Num))
		b = appendBytes(b, []byte(p.OldID))
		b = appendBytes(b, []byte(p.NewID))
		for _, m := range []map[string]any{p.Old, p.New} {
			var js []byte
			if m != nil {
				var err error
				if js, err = json.Marshal(m); err != nil {
					return nil, fmt.Errorf("index journal: traits of profile %d: %w", p.Num, err)
				}
			}
			b = appendBytes(b, js)
		}
	}
	var top uint32
	for _, e := range c.Events {
		top = max(top, e.Num+1)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Events)))
	return binary.AppendUvarint(b, uint64(top)), nil
}

// encodeEvents encodes an entry's events: each one's profile number, seq,
// name and time. The properties are not copied: the stored event (in the
// same commit) is read back at replay by its key.
func encodeEvents(evs []ingest.EventAdded) []byte {
	b := make([]byte, 0, 8+len(evs)*40)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, e := range evs {
		b = binary.AppendUvarint(b, uint64(e.Num))
		b = binary.AppendUvarint(b, e.Seq)
		b = appendBytes(b, []byte(e.Name))
		b = binary.AppendVarint(b, e.Timestamp.UnixNano())
	}
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// object reads a JSON object (an empty one is nil).
func (r *binReader) object() map[string]any {
	js := r.bytes()
	if len(js) == 0 || r.err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		r.fail(err.Error())
	}
	return m
}

// decodeProfiles decodes the profiles' side of an entry into c.
func decodeProfiles(r *binReader, c *ingest.Changes) {
	for range r.count() {
		c.Merges = append(c.Merges, ingest.Merge{Src: uint32(r.uvarint()), Dst: uint32(r.uvarint())})
	}
	for range r.count() {
		c.Deleted = append(c.Deleted, uint32(r.uvarint()))
	}
	for range r.count() {
		p := ingest.ProfileChange{Num: uint32(r.uvarint())}
		p.OldID, p.NewID = string(r.bytes()), string(r.bytes())
		p.Old, p.New = r.object(), r.object()
		c.Profiles = append(c.Profiles, p)
	}
}

// decodeEvents decodes an entry's events into c. Without events (a
// replay of the profiles' side) they carry their numbers only.
func decodeEvents(r *binReader, c *ingest.Changes, events bool) {
	for range r.count() {
		e := ingest.EventAdded{Num: uint32(r.uvarint()), Seq: r.uvarint()}
		if name := r.bytes(); events { // else only the number is applied
			e.Name = string(name)
		}
		if t := r.varint(); events {
			e.Timestamp = time.Unix(0, t).UTC()
		}
		c.Events = append(c.Events, e)
	}
}

// replay applies the journal entries after x.jseq from r, through seq
// to (0: to the end); progress hears how many were applied after each.
// The entries through profilesThrough change only the profiles side
// (applyProfiles): their events are in the event columns already, read
// from a checkpoint file of a later seq than the profiles'. Entries are
// decoded (mostly the events' property JSON, read from the store) on
// several workers while this goroutine applies them in order.
func (x *Index) replay(ctx context.Context, r pebble.Reader, to, profilesThrough uint64, progress func(int)) (int, error) {
	_, hi := store.JournalRange(x.ws)
	if to != 0 {
		hi = store.JournalKey(x.ws, to+1)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: store.JournalKey(x.ws, x.jseq+1), UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("read index journal: %w", err)
	}
	defer it.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(min(runtime.GOMAXPROCS(0), 4), 1)
	jobs := make(chan *journalEntry, 4*workers)
	order := make(chan *journalEntry, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for e := range jobs {
				e.decode(r, x.ws, e.seq > profilesThrough)
				close(e.done)
			}
		})
	}
	var readErr error
	go func() { // the reader: entries in order, to the workers and to the applier
		defer close(order)
		defer close(jobs)
		for it.First(); it.Valid() && ctx.Err() == nil; it.Next() {
			k := it.Key()
			e := &journalEntry{seq: binary.BigEndian.Uint64(k[len(k)-8:]), raw: slices.Clone(it.Value()), done: make(chan struct{})}
			select {
			case order <- e:
			case <-ctx.Done():
				return
			}
			jobs <- e
		}
		readErr = it.Error()
	}()
	defer wg.Wait()
	n := 0
	for e := range order {
		<-e.done
		if e.err == nil {
			e.err = ctx.Err()
		}
		if e.err == nil && e.seq != x.jseq+1 {
			e.err = fmt.Errorf("index journal: entry %d follows %d: %w", e.seq, x.jseq, ErrCorrupt)
		}
		if e.err != nil {
			cancel()
			for range order { // let the reader stop
			}
			return n, e.err
		}
		switch {
		case e.seq <= profilesThrough:
			if e.changes != nil { // a Retain changes only event columns
				x.mu.Lock()
				x.apply(e.changes, false)
				x.maxNum = max(x.maxNum, e.top)
				x.mu.Unlock()
			}
		case e.changes != nil:
			x.Apply(e.changes)
			// An event deleted later in the journal was reached all the
			// same: the store counted it.
			x.lastEventSeq = max(x.lastEventSeq, e.lastSeq)
		default:
			x.Retain(time.Unix(0, e.cut))
		}
		x.jseq = e.seq
		n++
		progress(n)
	}
	return n, readErr
}

// journalEntry is one entry being replayed.
type journalEntry struct {
	seq     uint64
	raw     []byte
	changes *ingest.Changes // a changes entry
	top     uint32          // one more than its events' greatest profile number, when they are not decoded
	cut     int64           // a retain entry
	lastSeq uint64          // the greatest event seq it names, stored or not
	err     error
	done    chan struct{} // closed once decoded
}

// decode decodes the entry and, when events is set, reads its events and
// their properties from the store (r, workspace ws).
func (e *journalEntry) decode(r pebble.Reader, ws uint32, events bool) {
	defer func() { e.raw = nil }()
	v := e.raw
	switch {
	case len(v) == 0:
		e.err = fmt.Errorf("index journal entry %d is empty: %w", e.seq, ErrCorrupt)
		return
	case v[0] == journalProfiles:
		br := &binReader{b: v[1:]}
		e.changes = &ingest.Changes{}
		decodeProfiles(br, e.changes)
		n, top := int(br.uvarint()), uint32(br.uvarint())
		if br.err != nil {
			e.err = fmt.Errorf("index journal entry %d: %w", e.seq, br.err)
			return
		}
		if !events || n == 0 {
			e.top = top
			return
		}
		if e.err = e.readEvents(r, ws, n); e.err != nil {
			return
		}
	case v[0] == journalChanges:
		br := &binReader{b: v[1:]}
		e.changes = &ingest.Changes{}
		decodeProfiles(br, e.changes)
		decodeEvents(br, e.changes, events)
		if br.err != nil {
			e.err = fmt.Errorf("index journal entry %d: %w", e.seq, br.err)
			return
		}
	case v[0] == journalRetain && len(v) == 9:
		e.cut = int64(binary.LittleEndian.Uint64(v[1:]))
		return
	default:
		e.err = fmt.Errorf("index journal entry %d of kind %q and %d bytes: %w", e.seq, v[0], len(v), ErrCorrupt)
		return
	}
	if events {
		e.err = e.readProperties(r, ws)
	}
}

// readEvents decodes the entry's record of its n events.
func (e *journalEntry) readEvents(r pebble.Reader, ws uint32, n int) error {
	v, closer, err := r.Get(store.JournalEventsKey(ws, e.seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("index journal entry %d names %d events and their record is missing: %w", e.seq, n, ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("index journal entry %d: read its events: %w", e.seq, err)
	}
	defer closer.Close()
	br := &binReader{b: v}
	decodeEvents(br, e.changes, true)
	if br.err == nil && len(e.changes.Events) != n {
		br.fail(fmt.Sprintf("%d events where the entry names %d", len(e.changes.Events), n))
	}
	if br.err != nil {
		return fmt.Errorf("index journal entry %d: its events: %w", e.seq, br.err)
	}
	return nil
}

// readProperties reads the properties of the entry's events from the
// store. An event no longer stored (its user deleted, its day past
// retention, later in the journal) is left out: what drops it follows in
// the journal, and nothing else refers to it. lastSeq counts it.
func (e *journalEntry) readProperties(r pebble.Reader, ws uint32) error {
	evs := e.changes.Events[:0]
	for _, ev := range e.changes.Events {
		e.lastSeq = max(e.lastSeq, ev.Seq)
		st, ok, err := store.ReadEvent(r, ws, ev.Num, ev.Timestamp, ev.Seq)
		if err != nil {
			return fmt.Errorf("index journal entry %d: event %d: %w", e.seq, ev.Seq, err)
		}
		if ok {
			ev.Properties = st.Properties
			evs = append(evs, ev)
		}
	}
	e.changes.Events = evs
	return nil
}

// lastJournalSeq is the seq of the last journal entry in r, or 0.
func lastJournalSeq(r pebble.Reader, ws uint32) (uint64, error) {
	lo, hi := store.JournalRange(ws)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	k := it.Key()
	return binary.BigEndian.Uint64(k[len(k)-8:]), nil
}
