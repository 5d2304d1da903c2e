package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FormatVersion is the version of the key layout in docs/format.md. Open
// refuses a store written with another version.
const FormatVersion = 1

var formatKey = []byte{tagMeta, 'f', 'o', 'r', 'm', 'a', 't'}

// Options configure Open.
type Options struct {
	// FS is the file system; nil means the OS's. Tests use vfs.NewMem().
	FS vfs.FS
	// CacheBytes is the block cache size; 0 means 256 MiB.
	CacheBytes int64
	Logger     *slog.Logger
}

// Store is the embedded database.
type Store struct {
	db  *pebble.DB
	log *slog.Logger
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 256 << 20
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:                          o.FS,
		Cache:                       cache,
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       40,
		Logger:                      quietLogger{o.Logger},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	s := &Store{db: db, log: o.Logger}
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) checkFormat() error {
	v, ok, err := Get(s.db, formatKey)
	if err != nil {
		return fmt.Errorf("read format version: %w", err)
	}
	if !ok {
		return s.db.Set(formatKey, binary.BigEndian.AppendUint32(nil, FormatVersion), pebble.Sync)
	}
	if len(v) != 4 {
		return fmt.Errorf("format version of %d bytes: %w", len(v), ErrCorruption)
	}
	if got := binary.BigEndian.Uint32(v); got != FormatVersion {
		return fmt.Errorf("store has format version %d, this build reads version %d", got, FormatVersion)
	}
	return nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// DB is the underlying Pebble database, for the packages that write
// batches of their own (ingest) and read ranges (index builds).
func (s *Store) DB() *pebble.DB { return s.db }

// Sync makes every write committed so far durable.
func (s *Store) Sync() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	return nil
}

// Get reads a key from any reader (the DB or an indexed batch), copying the
// value. It reports false when the key is absent.
func Get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

// Exists reports whether key is present.
func Exists(r pebble.Reader, key []byte) (bool, error) {
	_, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	closer.Close()
	return true, nil
}

// HashKey is how API keys are kept: only their SHA-256.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	k := []byte{tagKey}
	return append(k, h[:]...)
}

// LookupKey finds what an API or write key grants.
func (s *Store) LookupKey(key string) (KeyRecord, bool, error) {
	v, ok, err := Get(s.db, HashKey(key))
	if err != nil || !ok {
		return KeyRecord{}, false, err
	}
	r, err := decodeKeyRecord(v)
	return r, err == nil, err
}

// PutKey stores a key's grant in b.
func PutKey(b *pebble.Batch, key string, r KeyRecord) error {
	return b.Set(HashKey(key), encodeKeyRecord(r), nil)
}

// WorkspaceNum finds a workspace's number by name.
func WorkspaceNum(r pebble.Reader, name string) (uint32, bool, error) {
	v, ok, err := Get(r, append([]byte{tagWSName}, name...))
	if err != nil || !ok {
		return 0, false, err
	}
	if len(v) != 4 {
		return 0, false, fmt.Errorf("workspace %q number: %w", name, ErrCorruption)
	}
	return binary.BigEndian.Uint32(v), true, nil
}

// PutWorkspace stores a workspace record and its name in b.
func PutWorkspace(b *pebble.Batch, w Workspace) error {
	v, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("encode workspace: %w", err)
	}
	if err := b.Set(append([]byte{tagWSName}, w.Name...), binary.BigEndian.AppendUint32(nil, w.Num), nil); err != nil {
		return err
	}
	return b.Set(wsKey(tagWS, w.Num, 0), v, nil)
}

// Workspaces lists every workspace.
func (s *Store) Workspaces() ([]Workspace, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagWS}, UpperBound: []byte{tagWS + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Workspace
	for it.First(); it.Valid(); it.Next() {
		var w Workspace
		if err := json.Unmarshal(it.Value(), &w); err != nil {
			return nil, fmt.Errorf("workspace record %x: %v: %w", it.Key(), err, ErrCorruption)
		}
		out = append(out, w)
	}
	return out, it.Error()
}

// ReadCounters reads a workspace's counters (zero when new).
func ReadCounters(r pebble.Reader, ws uint32) (Counters, error) {
	v, ok, err := Get(r, CountersKey(ws))
	if err != nil || !ok {
		return Counters{}, err
	}
	return DecodeCounters(v)
}

// ReadProfile reads a root profile's record.
func ReadProfile(r pebble.Reader, ws, num uint32) (*ProfileRecord, bool, error) {
	v, ok, err := Get(r, ProfileKey(ws, num))
	if err != nil || !ok {
		return nil, false, err
	}
	p, err := DecodeProfile(v)
	if err != nil {
		return nil, false, fmt.Errorf("profile %d of workspace %d: %w", num, ws, err)
	}
	return p, true, nil
}

// ResolveID finds the root profile number an id is linked to.
func ResolveID(r pebble.Reader, ws uint32, id string) (uint32, bool, error) {
	v, ok, err := Get(r, IDKey(ws, id))
	if err != nil || !ok {
		return 0, false, err
	}
	if len(v) != 4 {
		return 0, false, fmt.Errorf("id %q link: %w", id, ErrCorruption)
	}
	return binary.BigEndian.Uint32(v), true, nil
}

// U32 encodes a uint32 value.
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// ScanIDs calls fn for every id link of a workspace; id is only valid
// during the call.
func ScanIDs(r pebble.Reader, ws uint32, fn func(id []byte, num uint32) error) error {
	lo, hi := wsRange(tagID, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("id link %q: %w", k[5:], ErrCorruption)
		}
		return fn(k[5:], binary.BigEndian.Uint32(v))
	})
}

// ScanLinks calls fn for every merged profile number and the number it was
// merged into.
func ScanLinks(r pebble.Reader, ws uint32, fn func(from, to uint32) error) error {
	lo, hi := wsRange(tagLink, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(k) != 9 || len(v) != 4 {
			return fmt.Errorf("merge link %x: %w", k, ErrCorruption)
		}
		return fn(binary.BigEndian.Uint32(k[5:]), binary.BigEndian.Uint32(v))
	})
}

// ScanEventNames calls fn for every event name of a workspace and its id.
func ScanEventNames(r pebble.Reader, ws uint32, fn func(name string, id uint32) error) error {
	lo, hi := wsRange(tagEventName, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("event name %q: %w", k[5:], ErrCorruption)
		}
		return fn(string(k[5:]), binary.BigEndian.Uint32(v))
	})
}

// ScanProfiles calls fn for every root profile of a workspace.
func ScanProfiles(ctx context.Context, r pebble.Reader, ws uint32, fn func(num uint32, p *ProfileRecord) error) error {
	lo, hi := wsRange(tagProfile, ws)
	n := 0
	return scan(r, lo, hi, func(k, v []byte) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if len(k) != 9 {
			return fmt.Errorf("profile key %x: %w", k, ErrCorruption)
		}
		p, err := DecodeProfile(v)
		if err != nil {
			return err
		}
		return fn(binary.BigEndian.Uint32(k[5:]), p)
	})
}

// ScanSchema calls fn for every schema entry of a workspace.
func ScanSchema(r pebble.Reader, ws uint32, fn func(kind byte, name string, val []byte) error) error {
	lo, hi := wsRange(tagSchema, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(k) < 6 {
			return fmt.Errorf("schema key %x: %w", k, ErrCorruption)
		}
		return fn(k[5], string(k[6:]), v)
	})
}

// Rejections reads up to limit dead-letter entries with seq > after.
func Rejections(r pebble.Reader, ws uint32, after uint64, limit int) ([]*Rejection, error) {
	lo := RejectKey(ws, after+1)
	_, hi := wsRange(tagReject, ws)
	var out []*Rejection
	err := scan(r, lo, hi, func(k, v []byte) error {
		if len(out) >= limit {
			return errStop
		}
		rej, err := DecodeRejection(v)
		if err != nil {
			return err
		}
		out = append(out, rej)
		return nil
	})
	return out, err
}

// ProfileEvents calls fn for every event recorded under profile num, day
// by day in time order.
func ProfileEvents(ctx context.Context, r pebble.Reader, ws, num uint32, fn func(StoredEvent) error) error {
	_, wsHi := wsRange(tagEvent, ws)
	lo, _ := wsRange(tagEvent, ws)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: wsHi})
	if err != nil {
		return err
	}
	defer it.Close()
	for day := uint32(0); ; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Find the next day that has any events, then this profile's run in it.
		if !it.SeekGE(eventDayPrefix(ws, day)) {
			return it.Error()
		}
		day = binary.BigEndian.Uint32(it.Key()[5:9])
		p := profileEventsPrefix(ws, day, num)
		for valid := it.SeekGE(p); valid && bytes.HasPrefix(it.Key(), p); valid = it.Next() {
			ev, err := decodeEvent(it.Key(), it.Value())
			if err != nil {
				return err
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
		if day == ^uint32(0) {
			return it.Error()
		}
		day++
	}
}

// ScanEvents calls fn for every event of a workspace, day by day.
func ScanEvents(ctx context.Context, r pebble.Reader, ws uint32, fn func(StoredEvent) error) error {
	return ScanEventsParallel(ctx, r, ws, 1, fn)
}

// scanChunk is a run of raw event records decoded by one worker.
type scanChunk struct {
	keys, vals [][]byte
	evs        []StoredEvent
	err        error
	done       chan struct{}
}

// scanChunkSize is how many records a worker decodes at a time.
const scanChunkSize = 1024

// ScanEventsParallel is ScanEvents with the decoding (mostly the
// properties' JSON, the bulk of a start's work) spread over workers
// goroutines; fn still sees every event in key order, on the caller's
// goroutine.
func ScanEventsParallel(ctx context.Context, r pebble.Reader, ws uint32, workers int, fn func(StoredEvent) error) error {
	if workers < 2 {
		lo, hi := wsRange(tagEvent, ws)
		n := 0
		return scan(r, lo, hi, func(k, v []byte) error {
			if k[9] != evByProfile {
				return nil
			}
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			ev, err := decodeEvent(k, v)
			if err != nil {
				return err
			}
			return fn(ev)
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *scanChunk, 2*workers)
	ordered := make(chan *scanChunk, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range work {
				c.evs = make([]StoredEvent, 0, len(c.keys))
				for i := range c.keys {
					ev, err := decodeEvent(c.keys[i], c.vals[i])
					if err != nil {
						c.err = err
						break
					}
					c.evs = append(c.evs, ev)
				}
				close(c.done)
			}
		})
	}
	var readErr error
	go func() { // the reader: raw records, in key order, in chunks
		defer close(ordered)
		defer close(work)
		lo, hi := wsRange(tagEvent, ws)
		c := &scanChunk{done: make(chan struct{})}
		// A chunk goes to the workers before the consumer may wait for
		// it, so every chunk the consumer sees gets decoded.
		send := func() bool {
			select {
			case work <- c:
			case <-ctx.Done():
				return false
			}
			select {
			case ordered <- c:
			case <-ctx.Done():
				return false
			}
			c = &scanChunk{done: make(chan struct{})}
			return true
		}
		readErr = scan(r, lo, hi, func(k, v []byte) error {
			if k[9] != evByProfile {
				return nil
			}
			c.keys = append(c.keys, slices.Clone(k))
			c.vals = append(c.vals, slices.Clone(v))
			if len(c.keys) == scanChunkSize && !send() {
				return ctx.Err()
			}
			return nil
		})
		if readErr == nil && len(c.keys) > 0 {
			send()
		}
	}()
	var err error
	for c := range ordered {
		if err != nil {
			continue // drain: the reader stops once ctx is done
		}
		<-c.done
		if err = c.err; err != nil {
			cancel()
			continue
		}
		for _, ev := range c.evs {
			if err = fn(ev); err != nil {
				cancel()
				break
			}
		}
		if err == nil {
			err = ctx.Err()
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// DeleteProfileEvents deletes, in b, every event recorded under num: the
// primary copies by range and their name-index entries one by one.
func DeleteProfileEvents(ctx context.Context, b *pebble.Batch, ws, num uint32, nameIDs map[string]uint32) error {
	type span struct{ lo, hi []byte }
	var spans []span
	var lastDay = ^uint32(0)
	err := ProfileEvents(ctx, b, ws, num, func(ev StoredEvent) error {
		day := Day(ev.Timestamp)
		if day != lastDay {
			p := profileEventsPrefix(ws, day, num)
			spans = append(spans, span{p, prefixEnd(p)})
			lastDay = day
		}
		if id, ok := nameIDs[ev.Name]; ok {
			return b.Delete(EventNameIndexKey(ws, day, id, ev.Timestamp, num, ev.Seq), nil)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete events of profile %d: %w", num, err)
	}
	for _, s := range spans {
		if err := b.DeleteRange(s.lo, s.hi, nil); err != nil {
			return err
		}
	}
	return nil
}

// DeleteEventsBefore deletes every event of a workspace on days before
// day: the retention sweep, one range deletion.
func (s *Store) DeleteEventsBefore(ws, day uint32) error {
	if day == 0 {
		return nil
	}
	if err := s.db.DeleteRange(eventDayPrefix(ws, 0), eventDayPrefix(ws, day), pebble.Sync); err != nil {
		return fmt.Errorf("retention of workspace %d before day %d: %w", ws, day, err)
	}
	return nil
}

// msgIDSweepBatch bounds how many expired messageIds one committed batch
// of the sweep deletes, so its memory does not grow with the backlog.
const msgIDSweepBatch = 10_000

// DeleteMsgIDsBefore removes dedup entries received before day, committing
// every msgIDSweepBatch deletions.
func (s *Store) DeleteMsgIDsBefore(ctx context.Context, ws, day uint32) (int, error) {
	lo, hi := wsRange(tagMsgID, ws)
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	n, pending := 0, 0
	err := scan(s.db, lo, hi, func(k, v []byte) error {
		if len(v) != 4 || binary.BigEndian.Uint32(v) >= day {
			return nil
		}
		if err := b.Delete(k, nil); err != nil {
			return err
		}
		n++
		if pending++; pending < msgIDSweepBatch {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b, pending = s.db.NewBatch(), 0
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep message ids of workspace %d: %w", ws, err)
	}
	return n, b.Commit(pebble.Sync)
}

var errStop = errors.New("stop")

func scan(r pebble.Reader, lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return it.Error()
}

// quietLogger sends Pebble's log lines to slog at debug level (errors at
// error level), so a running server's log is not flooded.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any)  { q.l.Debug(fmt.Sprintf(format, args...)) }
func (q quietLogger) Errorf(format string, args ...any) { q.l.Error(fmt.Sprintf(format, args...)) }
func (q quietLogger) Fatalf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

var _ io.Closer = (*Store)(nil)
