package index

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// maxPathDepth bounds how deep nested property objects are indexed as
// dotted paths.
const maxPathDepth = 4

// blockSize is the number of events per time-bounds block.
const blockSize = 1024

// Index is one workspace's indexes.
type Index struct {
	mu      sync.RWMutex
	all     *roaring.Bitmap     // live root profiles
	parent  map[uint32]uint32   // merged number → number it merged into
	kids    map[uint32][]uint32 // number → numbers merged straight into it
	merged  *roaring.Bitmap     // keys of parent
	deleted *roaring.Bitmap     // numbers whose events are gone
	maxNum  uint32              // one more than the largest number seen
	ids     idArena             // live root → canonical id
	traits  map[string]*traitIdx
	events  map[string]*eventCol
	// added collects the events apply records while collect is set
	// (ApplyEach; the writer's).
	added   []Event
	collect bool
	// retainFrom: events before it have passed retention and are ignored.
	retainFrom int64
	gen        uint64    // counts Apply calls
	pathBuf    []pathVal // addEvent's scratch (the writer's)
	partBytes  int       // see SetScanCacheBytes; 0: the default
	// See SetScanParallel and SetScanYield.
	scanWorkers, scanMinEvents, scanPerProfile int
	yieldEvery                                 int

	// Persistence (checkpoint.go): dir is "" for an index kept in memory
	// only. The writer owns these.
	ws          uint32
	dir         string
	jseq        uint64   // the last journal entry written or replayed
	keepFrom    uint64   // while Open checkpoints a rebuild: LoadOptions.KeepJournalFrom
	ckptSeq     uint64   // the event columns through this journal entry are in the checkpoint on disk
	ckptFile    string   // the checkpoint file of the event columns CURRENT names
	baseSeq     uint64   // the profiles' side through this entry is in baseFile; the journal since is kept
	baseFile    string   // "" until the first checkpoint
	ckptParts   []string // the part files ckptFile names
	sinceBase   int      // checkpoints since the base was written
	merge       *merge   // a newer base being written in the background (merge.go)
	pending     *pending // a checkpoint being written in the background
	mergeEvery  int      // merge after this many checkpoints since the base (0: the default)
	mergeTook   time.Duration
	lastMerge   time.Time
	nextPart    uint64 // names the next part file
	partMerges  int    // merged parts installed (partmerge.go)
	noPartMerge bool   // checkpoints merge no parts (SetPartMerge, for benchmarks)
	sealEvents  int    // seal a column's head when it holds this many events (0: at checkpoints only)
	headEvents  int    // events applied since the last checkpoint
	lastCkpt    time.Time
	ckptTook    time.Duration // how long the last checkpoint took
	// lastEventSeq is the store's event seq the index has reached (checked
	// against the store's counters when a checkpoint is opened).
	lastEventSeq uint64
	replayed     int  // journal entries applied by Open
	closed       bool // Close was called: no commit may reach it
	// scans counts the yielding scans running (EventYielding): parts that
	// Retain drops are unmapped only when none is (dead holds them until).
	scans atomic.Int32
	dead  []*part
	// partials: the parts' kept shares of event leaves (partial.go).
	partials *partials
	scratch  scratches // scans' state between scans (scratches.go)
	// crashAt, set by tests, stops a checkpoint at a stage (see crash).
	crashAt func(stage string) bool
}

type traitIdx struct {
	keys *roaring.Bitmap // profiles that have the key (even when null)
	vals map[string]*valEntry

	// Sorted distinct values, rebuilt by readers under numMu when a
	// distinct value appeared or vanished (numDirty): numbers, and
	// date-time strings by instant (parsed once, when their entry is
	// made). instOut counts date-time values outside the range of an
	// int64 instant: while any exists, date-time tests take the general
	// path.
	numMu    sync.Mutex
	num      sortedVals[float64]
	inst     sortedVals[int64]
	instOut  int
	numDirty bool
	sorted   bool // num and inst were built at least once

	// subs: for a dotted name "head.rest", the index of the values at rest
	// inside head's object values, by rest; created by readers under
	// subMu, kept current by the change feed.
	subMu sync.Mutex
	subs  map[string]*traitIdx
}

type eventCol struct {
	// hasDeleted: the column holds events of deleted profiles, to drop at
	// the next Retain.
	hasDeleted bool
	// parts: the sealed runs of older events, oldest first (part.go); the
	// fields below are the head, where new events are appended.
	parts  []*part
	prof   []uint32
	ts     []int64
	props  map[string]*propCol
	order  []*propCol // props' columns in creation order
	blocks []block
	// A profile's events, for one profile's evaluation: chained newest
	// first by timestamp, from byProf[n] through next. An event arriving
	// late is inserted at its place (walking past the newer ones), so a
	// walk for a window stops at the first event older than it: the cost
	// of re-evaluating a profile follows the events in the window, not its
	// whole history.
	byProf map[uint32]int32
	next   []int32 // position → the same profile's next older position; -1: none
}

type block struct{ min, max int64 }

type propCol struct {
	k     int               // the column's place in eventCol.order (and in every run's ids)
	ids   idCol             // per event of the head; 0 = the event lacks the path
	dict  []any             // id → value; dict[0] unused
	byKey map[string]uint32 // canonical JSON → id, for values not below
	// Numbers and strings by their own value: no canonical JSON to build
	// for every event (float64 bits keep 0 and -0 apart, as the canonical
	// JSON does).
	byNum map[uint64]uint32
	byStr map[string]uint32
	// counts[id]: how many retained events of live or merged profiles
	// hold value id (for the most frequent values of a property).
	counts []uint32
}

// intern returns v's id in the column's dictionary, adding it if new.
func (col *propCol) intern(v any) uint32 {
	if f, ok := condition.Number(v); ok && !math.IsNaN(f) {
		// Every numeric form is its float64, as in the canonical JSON.
		if col.byNum == nil {
			col.byNum = map[uint64]uint32{}
		}
		k := math.Float64bits(f)
		if id, ok := col.byNum[k]; ok {
			return id
		}
		id := col.add(v)
		col.byNum[k] = id
		return id
	}
	if x, ok := v.(string); ok {
		if col.byStr == nil {
			col.byStr = map[string]uint32{}
		}
		if id, ok := col.byStr[x]; ok {
			return id
		}
		id := col.add(v)
		col.byStr[x] = id
		return id
	}
	key := canonKey(v)
	if id, ok := col.byKey[key]; ok {
		return id
	}
	id := col.add(v)
	col.byKey[key] = id
	return id
}

// index enters dictionary value v with id into the lookup intern uses
// (reading a checkpoint).
func (col *propCol) index(v any, id uint32) {
	if f, ok := condition.Number(v); ok && !math.IsNaN(f) {
		if col.byNum == nil {
			col.byNum = map[uint64]uint32{}
		}
		col.byNum[math.Float64bits(f)] = id
		return
	}
	if x, ok := v.(string); ok {
		if col.byStr == nil {
			col.byStr = map[string]uint32{}
		}
		col.byStr[x] = id
		return
	}
	col.byKey[canonKey(v)] = id
}

func (col *propCol) add(v any) uint32 {
	col.dict = append(col.dict, v)
	return uint32(len(col.dict) - 1)
}

// push appends one event's value id and counts it.
func (col *propCol) push(id uint32) {
	col.ids.add(id)
	if id == 0 {
		return
	}
	for int(id) >= len(col.counts) {
		col.counts = append(col.counts, 0)
	}
	col.counts[id]++
}

// New returns an empty index.
func New() *Index {
	return &Index{
		all: roaring.New(), parent: map[uint32]uint32{}, kids: map[uint32][]uint32{}, merged: roaring.New(), deleted: roaring.New(),
		traits: map[string]*traitIdx{}, events: map[string]*eventCol{}, retainFrom: math.MinInt64,
		scanWorkers: min(runtime.GOMAXPROCS(0), 4), scanMinEvents: 1 << 20, scanPerProfile: 2, yieldEvery: 64,
		partials: newPartials(defaultPartialBytes),
	}
}

// Load builds a workspace's index from the store.
func Load(ctx context.Context, r pebble.Reader, ws uint32) (*Index, error) {
	return LoadWith(ctx, r, ws, LoadOptions{})
}

// LoadWith is Load with options (progress reports).
func LoadWith(ctx context.Context, r pebble.Reader, ws uint32, o LoadOptions) (*Index, error) {
	x := New()
	x.sealEvents = o.SealEvents
	meter := newLoadMeter(r, ws, o.Progress)
	err := store.ScanLinks(r, ws, func(from, to uint32) error {
		x.parent[from] = to
		x.kids[to] = append(x.kids[to], from)
		x.merged.Add(from)
		x.maxNum = max(x.maxNum, from+1, to+1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load merges: %w", err)
	}
	err = store.ScanProfiles(ctx, r, ws, func(num uint32, p *store.ProfileRecord) error {
		x.setTraits(num, nil, p.Traits)
		x.all.Add(num)
		x.ids.set(num, p.ID)
		x.maxNum = max(x.maxNum, num+1)
		meter.profile(num)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	meter.profilesDone()
	// Decoding (the properties' JSON) is most of a start's work: it is
	// spread over the cores, the index built in key order on this one.
	err = store.ScanEventsParallel(ctx, r, ws, min(runtime.GOMAXPROCS(0), 4), func(ev store.StoredEvent) error {
		x.addEvent(ev.Profile, ev.Name, ev.Timestamp, ev.Properties)
		x.maybeSeal(ev.Name)
		x.lastEventSeq = max(x.lastEventSeq, ev.Seq)
		meter.event(ev.Timestamp, ev.Profile)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	meter.done()
	return x, nil
}

// Apply applies one commit's changes.
func (x *Index) Apply(c *ingest.Changes) { x.ApplyEach(c, nil) }

// ApplyEach is Apply, calling fn (when not nil) for each of c's events
// that a walk of its profile will read (not those before the retention
// horizon), in order, with k its position in c.Events and ev the event as
// the index now holds it, before any head is sealed: the writer's way to
// follow exactly what the index recorded (the segment manager's running
// states). fn runs on the writer's goroutine without the lock, and must
// not keep ev past its return.
func (x *Index) ApplyEach(c *ingest.Changes, fn func(k int, ev Event)) {
	x.mu.Lock()
	if fn != nil {
		x.added = x.added[:0]
	}
	x.collect = fn != nil
	x.apply(c, true)
	x.collect = false
	x.releaseDead()
	x.mu.Unlock()
	if fn != nil {
		for k, ev := range x.added {
			if ev.i >= 0 {
				fn(k, ev)
			}
		}
		clear(x.added) // no column kept alive by the buffer
	}
	x.headEvents += len(c.Events)
	if x.sealEvents > 0 {
		for _, e := range c.Events {
			x.maybeSeal(e.Name)
		}
	}
}

// maybeSeal seals event name's head when it reached sealEvents. The
// caller is the writer, not holding the lock.
func (x *Index) maybeSeal(name string) {
	if c := x.events[name]; c != nil && x.sealEvents > 0 && len(c.prof) >= x.sealEvents {
		x.sealHead(c)
	}
}

// apply applies c; without events, only its profiles side: profile sets,
// links, ids, traits and the largest number (a replay through a seq whose
// event columns were read from a checkpoint file).
func (x *Index) apply(c *ingest.Changes, events bool) {
	for _, m := range c.Merges {
		x.parent[m.Src] = m.Dst
		x.kids[m.Dst] = append(x.kids[m.Dst], m.Src)
		x.merged.Add(m.Src)
	}
	x.gen++
	for _, n := range c.Deleted {
		x.deleted.Add(n)
		if events {
			x.uncount(n)
		}
	}
	for _, p := range c.Profiles {
		x.maxNum = max(x.maxNum, p.Num+1)
		x.setTraits(p.Num, p.Old, p.New)
		if p.NewID == "" {
			x.all.Remove(p.Num)
			x.ids.del(p.Num)
		} else {
			x.all.Add(p.Num)
			x.ids.set(p.Num, p.NewID)
		}
	}
	for _, e := range c.Events {
		if !events {
			x.maxNum = max(x.maxNum, e.Num+1)
			continue
		}
		ev := x.addEvent(e.Num, e.Name, e.Timestamp, e.Properties)
		if x.collect {
			x.added = append(x.added, ev) // ev.i < 0: not read by walks
			if e.Timestamp.UnixNano() < x.retainFrom {
				x.added[len(x.added)-1].i = -1
			}
		}
		x.lastEventSeq = max(x.lastEventSeq, e.Seq)
	}
}

// setTraits moves num from its old values' bitmaps to its new ones'.
func (x *Index) setTraits(num uint32, old, cur map[string]any) {
	for k, v := range old {
		nv, ok := cur[k]
		if ok && canonKey(nv) == canonKey(v) {
			continue
		}
		t := x.traits[k]
		if t == nil {
			if !ok {
				continue
			}
			t = newTraitIdx()
			x.traits[k] = t
		}
		t.set(num, v, true, nv, ok) // removing an unindexed value is a no-op
	}
	for k, v := range cur {
		ov, ok := old[k]
		if ok {
			continue // changed values were moved above
		}
		t := x.traits[k]
		if t == nil {
			t = newTraitIdx()
			x.traits[k] = t
		}
		t.set(num, ov, false, v, true)
	}
}

func newTraitIdx() *traitIdx {
	return &traitIdx{keys: roaring.New(), vals: map[string]*valEntry{}}
}

// set moves num from value old (when hadOld) to value cur (when hasCur),
// here and in the derived indexes of sub-paths of object values.
func (t *traitIdx) set(num uint32, old any, hadOld bool, cur any, hasCur bool) {
	if hadOld {
		key := canonKey(old)
		if e := t.vals[key]; e != nil {
			e.remove(num)
			if e.n == 0 {
				delete(t.vals, key)
				t.markDirty()
			}
		}
		if !hasCur {
			t.keys.Remove(num)
		}
	}
	if hasCur {
		t.keys.Add(num)
		key := canonKey(cur)
		e := t.vals[key]
		if e == nil {
			e = newValEntry(storedValue(cur, key))
			t.vals[key] = e
			t.markDirty()
		}
		e.add(num)
	}
	if hadOld || hasCur {
		t.moveNum(num, old, hadOld, cur, hasCur)
	}
	for rest, sub := range t.subs {
		ov, op := subValue(old, hadOld, rest)
		nv, np := subValue(cur, hasCur, rest)
		if op && np && canonKey(ov) == canonKey(nv) {
			continue
		}
		sub.set(num, ov, op, nv, np)
	}
}

// subValue is the value at path rest inside v when v is an object
// (model.Lookup's semantics).
func subValue(v any, present bool, rest string) (any, bool) {
	obj, ok := v.(map[string]any)
	if !present || !ok {
		return nil, false
	}
	return model.Lookup(obj, rest)
}

// sub returns the derived index of the values at path rest inside this
// trait's object values: built on first use from the distinct values,
// then kept current by set. Readers holding RLock may call it.
func (t *traitIdx) sub(rest string) *traitIdx {
	t.subMu.Lock()
	defer t.subMu.Unlock()
	if s := t.subs[rest]; s != nil {
		return s
	}
	s := newTraitIdx()
	// Each derived value's profiles are gathered and unioned once: an
	// Or per source value into a growing bitmap copied its arrays at each
	// step (address.city over 10M near-unique addresses: seconds).
	var all gather
	of := map[*valEntry]*gather{}
	for _, e := range t.vals {
		v, ok := subValue(e.value(), true, rest)
		if !ok {
			continue
		}
		all.add(e)
		key := canonKey(v)
		se := s.vals[key]
		if se == nil {
			se = newValEntry(storedValue(v, key))
			s.vals[key] = se
			of[se] = &gather{}
		}
		of[se].add(e)
	}
	s.keys = all.union()
	for se, g := range of {
		se.set(g.union())
	}
	s.numDirty = true
	if t.subs == nil {
		t.subs = map[string]*traitIdx{}
	}
	t.subs[rest] = s
	return s
}

func (x *Index) addEvent(num uint32, name string, ts time.Time, props map[string]any) Event {
	x.maxNum = max(x.maxNum, num+1)
	c := x.events[name]
	if c == nil {
		c = &eventCol{props: map[string]*propCol{}, byProf: map[uint32]int32{}}
		x.events[name] = c
	}
	i := c.appendEvent(num, ts.UnixNano())
	// The event's paths and values, walked once (no per-event maps).
	pv, dotted := x.pathBuf[:0], false
	pv, dotted = appendPaths(pv, "", props, 1, dotted)
	x.pathBuf = pv
	if dotted {
		// A literal dotted key may name a nested path too: model.Lookup
		// decides which value the path has.
		seen := map[string]bool{}
		out := pv[:0]
		for _, e := range pv {
			if !seen[e.path] {
				seen[e.path] = true
				e.v, _ = model.Lookup(props, e.path)
				out = append(out, e)
			}
		}
		pv = out
	}
	for _, e := range pv {
		col := c.props[e.path]
		if col == nil {
			col = &propCol{k: len(c.order), ids: newIDCol(i), dict: []any{nil}, byKey: map[string]uint32{}}
			c.props[e.path] = col
			c.order = append(c.order, col)
		}
		col.push(col.intern(e.v))
	}
	for _, col := range c.order {
		if col.ids.len() == i {
			col.push(0) // the event lacks the path
		}
	}
	return Event{col: c, i: int32(i)}
}

// appendEvent adds an event's profile and time, chains it among the
// profile's events by time and widens its block's time bounds; it returns the
// event's position. The property columns are the caller's.
func (c *eventCol) appendEvent(num uint32, t int64) int {
	i := len(c.prof)
	c.prof = append(c.prof, num)
	c.ts = append(c.ts, t)
	c.next = append(c.next, -1)
	if head, ok := c.byProf[num]; !ok || t >= c.ts[head] {
		if ok {
			c.next[i] = head
		}
		c.byProf[num] = int32(i) // the newest (events mostly arrive in order)
	} else {
		p := head
		for q := c.next[p]; q >= 0 && c.ts[q] > t; q = c.next[p] {
			p = q
		}
		c.next[i], c.next[p] = c.next[p], int32(i)
	}
	if i%blockSize == 0 {
		c.blocks = append(c.blocks, block{t, t})
	} else {
		b := &c.blocks[len(c.blocks)-1]
		b.min, b.max = min(b.min, t), max(b.max, t)
	}
	return i
}

// pathVal is one property path of an event and its value.
type pathVal struct {
	path string
	v    any
}

// appendPaths lists the property paths of props with their values: every
// key, and the dotted paths into nested objects. dotted reports a key
// with a dot in it.
func appendPaths(into []pathVal, prefix string, props map[string]any, depth int, dotted bool) ([]pathVal, bool) {
	for k, v := range props {
		dotted = dotted || strings.Contains(k, ".")
		into = append(into, pathVal{prefix + k, v})
		if sub, ok := v.(map[string]any); ok && depth < maxPathDepth {
			into, dotted = appendPaths(into, prefix+k+".", sub, depth+1, dotted)
		}
	}
	return into, dotted
}

// canonKey is condition.CanonicalJSON(v), without encoding/json for the
// common scalars.
func canonKey(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case rawJSON:
		return string(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case string:
		for i := 0; i < len(x); i++ {
			if c := x[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return condition.CanonicalJSON(v) // needs escaping
			}
		}
		return `"` + x + `"`
	case float64:
		// encoding/json's float format: 'f' between 1e-6 and 1e21.
		if a := math.Abs(x); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
	case map[string]any, []any:
		// Objects (a cart, an address) are interned whole, once per event:
		// encoding/json's reflection was a large part of building a column.
		if b, ok := appendCanon(make([]byte, 0, 64), v); ok {
			return string(b)
		}
	}
	return condition.CanonicalJSON(v)
}

// appendCanon appends v's canonical JSON (as condition.CanonicalJSON
// writes it: object keys sorted, numbers as float64) for values made of
// objects, arrays, plain strings, booleans, null and float64 in
// encoding/json's plain range; ok is false for anything else, which
// CanonicalJSON must encode.
func appendCanon(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		return strconv.AppendBool(b, x), true
	case string:
		return appendPlainString(b, x)
	case float64:
		if a := math.Abs(x); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(b, x, 'f', -1, 64), true
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendPlainString(b, k); !ok {
				return b, false
			}
			b = append(b, ':')
			if b, ok = appendCanon(b, x[k]); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendCanon(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// appendPlainString quotes s when encoding/json would write it as itself.
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// root maps a profile number to the live root it belongs to.
func (x *Index) root(n uint32) (uint32, bool) {
	for x.merged.Contains(n) {
		n = x.parent[n]
	}
	if x.deleted.Contains(n) {
		return 0, false
	}
	return n, true
}

// RLock holds the index still for a consistent evaluation.
func (x *Index) RLock() { x.mu.RLock() }

// RUnlock releases RLock.
func (x *Index) RUnlock() { x.mu.RUnlock() }

// Yield lets the writer in: a caller holding RLock releases it and takes
// it again (waiting for a writer already waiting). What the caller read
// before may have changed after; bitmaps the index answered are the
// caller's and stay as they were.
func (x *Index) Yield() {
	x.mu.RUnlock()
	x.mu.RLock()
}

// All returns the live root profiles. The caller holds RLock and must not
// modify it.
func (x *Index) All() *roaring.Bitmap { return x.all }

// Size is the number of live profiles.
func (x *Index) Size() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.all.GetCardinality()
}

// Trait evaluates a trait leaf. The caller holds RLock.
func (x *Index) Trait(n *condition.Node, now time.Time) *roaring.Bitmap {
	test := n.Test
	name := n.Name
	// Fast paths: direct lookups and numeric ranges on a top-level trait.
	if t, ok := x.traits[name]; ok && !strings.Contains(name, ".") {
		if bm, ok := x.traitFast(t, test, now); ok {
			return bm
		}
	}
	// General path: the test on every distinct value (model.Lookup's
	// semantics: a literal key wins, else the first dot splits the name).
	var g gather
	have := roaring.New() // profiles for which the name resolves
	if t, ok := x.traits[name]; ok {
		for _, e := range t.vals {
			if test.Match(e.testValue(test), true, now) {
				g.add(e)
			}
		}
		have.Or(t.keys)
	}
	if head, rest, ok := strings.Cut(name, "."); ok {
		if t, ok := x.traits[head]; ok {
			// The values at rest inside head's objects, each once, rather
			// than every distinct object.
			for _, e := range t.sub(rest).vals {
				bm := roaring.AndNot(e.bitmap(), have)
				if test.Match(e.testValue(test), true, now) {
					g.parts = append(g.parts, bm)
				}
				have.Or(bm)
			}
		}
	}
	out := g.union()
	if test.Match(nil, false, now) {
		out.Or(roaring.AndNot(x.all, have))
	}
	out.And(x.all)
	return out
}

// traitFast answers eq/neq/in/not_in on scalars by lookup, and numeric
// and date-time ranges (within_last too) by binary search over the sorted
// distinct values: a date-time is parsed once, when its value is first
// seen, never per query. It reports false when the general path must
// answer.
func (x *Index) traitFast(t *traitIdx, test *condition.Test, now time.Time) (*roaring.Bitmap, bool) {
	if bm, ok, handled := x.instFast(t, test, now); handled {
		return bm, ok
	}
	lookup := func(s condition.Scalar) *roaring.Bitmap {
		var v any
		switch s.Type {
		case model.Number:
			v = s.Num
		case model.String:
			v = s.Str
		case model.Boolean:
			v = s.Bool
		}
		if e := t.vals[canonKey(v)]; e != nil {
			return e.bitmap()
		}
		return roaring.New()
	}
	scalarOK := func(s condition.Scalar) bool { return s.Type != model.DateTime && !test.IgnoreCase }
	switch test.Op {
	case condition.OpExists, condition.OpNotExists:
		// The profiles with the key, less those whose value is null: one
		// operation over the live profiles, not a pass over every value.
		has := t.keys
		if e := t.vals[canonKey(nil)]; e != nil {
			has = roaring.AndNot(t.keys, e.bitmap())
		}
		if test.Op == condition.OpExists {
			return roaring.And(has, x.all), true
		}
		return roaring.AndNot(x.all, has), true
	case condition.OpEq, condition.OpNeq:
		if !scalarOK(test.Scalar) {
			return nil, false
		}
		if test.Op == condition.OpNeq {
			return roaring.AndNot(x.all, lookup(test.Scalar)), true
		}
		return lookup(test.Scalar).Clone(), true
	case condition.OpIn, condition.OpNotIn:
		parts := make([]*roaring.Bitmap, 0, len(test.List))
		for _, s := range test.List {
			if !scalarOK(s) {
				return nil, false
			}
			parts = append(parts, lookup(s))
		}
		bm := roaring.FastOr(parts...)
		if test.Op == condition.OpNotIn {
			bm = roaring.AndNot(x.all, bm)
		}
		return bm, true
	case condition.OpGt, condition.OpGte, condition.OpLt, condition.OpLte, condition.OpBetween:
		lo, hi := math.Inf(-1), math.Inf(1)
		loIncl, hiIncl := true, true
		switch test.Op {
		case condition.OpBetween:
			if test.List[0].Type != model.Number {
				return nil, false
			}
			lo, hi = test.List[0].Num, test.List[1].Num
		case condition.OpGt, condition.OpGte:
			if test.Scalar.Type != model.Number {
				return nil, false
			}
			lo, loIncl = test.Scalar.Num, test.Op == condition.OpGte
		default:
			if test.Scalar.Type != model.Number {
				return nil, false
			}
			hi, hiIncl = test.Scalar.Num, test.Op == condition.OpLte
		}
		return union(t.numRange(lo, loIncl, hi, hiIncl)), true
	}
	return nil, false
}

// instFast answers within_last, not_within_last and comparisons with a
// date-time operand from the instants. handled is false for other tests.
func (x *Index) instFast(t *traitIdx, test *condition.Test, now time.Time) (bm *roaring.Bitmap, ok, handled bool) {
	const minNs, maxNs = math.MinInt64, math.MaxInt64
	ns := func(tm time.Time) (int64, bool) {
		if tm.Before(minInstant) || tm.After(maxInstant) {
			return 0, false
		}
		return tm.UnixNano(), true
	}
	var lo, hi int64 = minNs, maxNs
	loIncl, hiIncl, negate := true, true, false
	switch test.Op {
	case condition.OpWithinLast, condition.OpNotWithinLast:
		// (now - d, now]
		n, ok1 := ns(now)
		from, ok2 := ns(now.Add(-test.Duration))
		if !ok1 || !ok2 {
			return nil, false, true
		}
		lo, loIncl, hi = from, false, n
		negate = test.Op == condition.OpNotWithinLast
	case condition.OpGt, condition.OpGte, condition.OpLt, condition.OpLte:
		if test.Scalar.Type != model.DateTime {
			return nil, false, false
		}
		v, ok := ns(test.Scalar.Time)
		if !ok {
			return nil, false, true
		}
		switch test.Op {
		case condition.OpGt, condition.OpGte:
			lo, loIncl = v, test.Op == condition.OpGte
		default:
			hi, hiIncl = v, test.Op == condition.OpLte
		}
	case condition.OpBetween:
		if len(test.List) != 2 || test.List[0].Type != model.DateTime {
			return nil, false, false
		}
		a, ok1 := ns(test.List[0].Time)
		b, ok2 := ns(test.List[1].Time)
		if !ok1 || !ok2 {
			return nil, false, true
		}
		lo, hi = a, b
	default:
		return nil, false, false
	}
	parts, ok := t.instRange(lo, loIncl, hi, hiIncl)
	if !ok {
		return nil, false, true
	}
	bm = union(parts)
	if negate {
		bm = roaring.AndNot(x.all, bm)
	}
	return bm, true, true
}

// sortedLocked rebuilds the sorted distinct values when they are stale.
// The caller holds numMu.
func (t *traitIdx) sortedLocked() {
	if !t.numDirty && t.sorted {
		return
	}
	t.num.reset()
	t.inst.reset()
	t.instOut = 0
	for _, e := range t.vals {
		if f, ok := e.v.(float64); ok {
			t.num.add(f, e)
		}
		switch {
		case e.isInst:
			t.inst.add(e.inst, e)
		case e.instOut:
			t.instOut++
		}
	}
	t.num.sort()
	t.inst.sort()
	t.numDirty, t.sorted = false, true
}

// numRange returns the bitmaps whose union is the profiles with a number
// in the range.
func (t *traitIdx) numRange(lo float64, loIncl bool, hi float64, hiIncl bool) []*roaring.Bitmap {
	t.numMu.Lock()
	defer t.numMu.Unlock()
	t.sortedLocked()
	return t.num.rangeParts(lo, loIncl, hi, hiIncl)
}

// instRange returns the bitmaps whose union is the profiles with a
// date-time in the range (Unix ns); ok is false while a date-time outside
// the int64 range exists (the general path answers).
func (t *traitIdx) instRange(lo int64, loIncl bool, hi int64, hiIncl bool) (parts []*roaring.Bitmap, ok bool) {
	t.numMu.Lock()
	defer t.numMu.Unlock()
	t.sortedLocked()
	if t.instOut > 0 {
		return nil, false
	}
	return t.inst.rangeParts(lo, loIncl, hi, hiIncl), true
}

// moveNum keeps the buckets current when num's value changes among
// existing distinct values; a new or vanished distinct value marks them
// stale instead (markDirty). The caller is the change feed.
func (t *traitIdx) moveNum(num uint32, old any, hadOld bool, cur any, hasCur bool) {
	t.numMu.Lock()
	defer t.numMu.Unlock()
	if t.numDirty || !t.sorted {
		return
	}
	of, oNum := old.(float64)
	cf, cNum := cur.(float64)
	t.num.move(num, of, hadOld && oNum, cf, hasCur && cNum)
	if t.inst.buckets != nil {
		oi, oInst, _ := instantOf(old)
		ci, cInst, _ := instantOf(cur)
		t.inst.move(num, oi, hadOld && oInst, ci, hasCur && cInst)
	}
}

func (t *traitIdx) markDirty() {
	t.numMu.Lock()
	t.numDirty = true
	t.numMu.Unlock()
}
