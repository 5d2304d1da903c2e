package index

import (
	"container/list"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/cohortdb/cohort/internal/condition"
)

// Partial aggregates of parts. A part is immutable, so what a scan counts
// in a stretch of it for one leaf's where-predicates and aggregate column
// is the same at every evaluation whose window holds that whole stretch:
// each profile's count of qualifying events and its aggregate state.
// Parts are cut into chunks of chunkBlocks blocks (1M events by default),
// and a stretch is the longest run of a part's chunks wholly inside the
// window (the whole part when it is inside). The first scan that needs a
// stretch's share counts the stretch alone and keeps the result, by
// profile number ascending; later ones fold it into their state in
// number order (sequential memory) instead of reading the events (a
// random access by number each). A window that cuts through a part reads
// at most one chunk event by event at each end, whatever the part's
// size. One partial per stretch rather than per chunk: a profile's
// events spread over the chunks are one row, folded in one pass (per
// chunk, an all-history average at 10M profiles took 394 ms, against
// 160 per stretch and 450-500 reading the events).
//
// This is Druid's per-segment cache, applied to stretches of parts: what
// is kept is the stretch's share of the leaf before the count and
// aggregate are compared, so leaves that differ only in those share it,
// and so do windows that cover the same stretch. A leaf whose predicates
// depend on the evaluation instant (within_last on a property) keeps
// none, nor distinct over more than 64 values (its per-profile state is
// a set). The cache is bounded in bytes and drops the least recently
// used; a part that retention or a merge replaced is never asked for
// again and ages out. As the window moves, its stretch changes when an
// end crosses a chunk boundary, and the next scan makes a new partial.

// defaultPartialBytes bounds the partials an index keeps.
const defaultPartialBytes = 512 << 20

// partial is a stretch of a part's share of a leaf: the profile numbers
// with a qualifying event, ascending, with their counts and aggregate states
// (cells or masks, by the scan's mode).
type partial struct {
	nums  []uint32
	cnt   []uint32
	cells []aggCell
	masks []uint64
}

func (pt *partial) bytes() int {
	return len(pt.nums)*4 + len(pt.cnt)*4 + len(pt.cells)*int(unsafe.Sizeof(aggCell{})) + len(pt.masks)*8
}

// partialKey names a partial: the part, its blocks [from, to) and what
// was counted.
type partialKey struct {
	p        *part
	from, to int
	leaf     string
}

// partials is an index's cache of partials. Its mutex is a leaf: taken
// by scans with or without the index's read lock, never held while
// taking another lock or while counting.
type partials struct {
	mu    sync.Mutex
	max   int // bytes; 0: keep none
	chunk int // blocks per chunk
	used  int
	byKey map[partialKey]*list.Element
	lru   list.List // of *partialEntry, most recent first
	hits  uint64
	made  uint64
}

type partialEntry struct {
	key partialKey
	pt  *partial
}

func newPartials(max int) *partials {
	return &partials{max: max, chunk: defaultChunkBlocks, byKey: map[partialKey]*list.Element{}}
}

// SetPartials bounds the memory the partial aggregates of parts may take
// (default 512 MiB; 0 keeps none) and sets the chunks their stretches
// are made of, in blocks of 1,024 events (0: the default, 1,024 blocks;
// tests set 1). A stretch of fewer than a sixteenth of a chunk's events
// (a small part) is read event by event, unless chunks are under 16
// blocks.
func (x *Index) SetPartials(maxBytes, chunkBlocks int) {
	c := x.partials
	c.mu.Lock()
	defer c.mu.Unlock()
	if chunkBlocks <= 0 {
		chunkBlocks = defaultChunkBlocks
	}
	c.max, c.chunk = max(maxBytes, 0), chunkBlocks
	c.evict(0)
}

// PartialStats reports the partials kept: their bytes, how many times a
// scan used one, and how many were made.
func (x *Index) PartialStats() (bytes int, hits, made uint64) {
	c := x.partials
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.hits, c.made
}

func (c *partials) get(k partialKey) *partial {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[k]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	c.hits++
	return e.Value.(*partialEntry).pt
}

// put keeps pt unless it is over the whole budget.
func (c *partials) put(k partialKey, pt *partial) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := pt.bytes()
	if _, ok := c.byKey[k]; ok || n > c.max {
		return
	}
	c.evict(n)
	c.byKey[k] = c.lru.PushFront(&partialEntry{k, pt})
	c.used += n
	c.made++
}

// evict drops the least recently used until n more bytes fit.
func (c *partials) evict(n int) {
	for c.used+n > c.max && c.lru.Len() > 0 {
		e := c.lru.Back()
		pe := c.lru.Remove(e).(*partialEntry)
		delete(c.byKey, pe.key)
		c.used -= pe.pt.bytes()
	}
}

// partialLeaf is the key of what a scan of leaf n counts per part, or ""
// when its share of a part is not kept: a predicate that depends on the
// instant, or distinct by pairs.
func partialLeaf(n *condition.Node, mode accMode) string {
	if mode == accPairs {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d", mode)
	for i := range n.Where {
		w := &n.Where[i]
		if w.Op == condition.OpWithinLast || w.Op == condition.OpNotWithinLast {
			return ""
		}
		fmt.Fprintf(&b, "|%q %s %s %t", w.Property, w.Op, condition.CanonicalJSON(w.Value), w.IgnoreCase)
	}
	if a := n.Aggregate; a != nil {
		fmt.Fprintf(&b, "|%s %q", a.Fn, a.Property)
	}
	return b.String()
}

// makePartial extracts a stretch's share from a scratch that counted only
// that stretch, and leaves the scratch cleared.
func makePartial(s *scratch, mode accMode) *partial {
	nums := s.touched
	if s.sweep() {
		nums = nums[:0]
		for n, c := range s.cnt[:s.size] {
			if c != 0 {
				nums = append(nums, uint32(n))
			}
		}
	} else {
		slices.Sort(nums)
	}
	pt := &partial{nums: slices.Clone(nums), cnt: make([]uint32, len(nums))}
	switch mode {
	case accCells:
		pt.cells = make([]aggCell, len(nums))
	case accMask:
		pt.masks = make([]uint64, len(nums))
	}
	for i, n := range pt.nums {
		pt.cnt[i] = s.cnt[n]
		switch mode {
		case accCells:
			pt.cells[i] = s.cells[n]
		case accMask:
			pt.masks[i] = s.mask[n]
		}
		s.clear(n)
	}
	s.touched = s.touched[:0]
	return pt
}

// fold adds a partial into a scan's state.
func (pt *partial) fold(s *scratch, mode accMode) {
	cnt := s.cnt
	for i, n := range pt.nums {
		if cnt[n] == 0 {
			s.firstTouch(n)
		}
		cnt[n] += pt.cnt[i]
		switch mode {
		case accCells:
			s.cells[n].merge(&pt.cells[i], s.op)
		case accMask:
			s.mask[n] |= pt.masks[i]
		}
	}
}

// defaultChunkBlocks is the blocks of a chunk: about a million events,
// the most a window that cuts through a part reads event by event at
// each of its ends.
const defaultChunkBlocks = 1024

// span is a stretch of a part the scan folds from one partial: blocks
// [from, to) of run r (the runs are the parts', by index in p.runs).
type span struct{ r, from, to int }

// covered lists the spans whose share the scan takes from partials,
// ascending: in each part, each longest stretch of consecutive chunks
// wholly inside the window (the whole part when it is inside), with at
// least a sixteenth of a chunk's events, when the leaf's share can be
// kept. One partial per stretch: a profile's events spread over its
// chunks are one row, and the scan folds it in one pass.
func (c *partials) covered(p *scanPlan, parts []*part, key string) []span {
	c.mu.Lock()
	chunk, keep := c.chunk, c.max > 0
	c.mu.Unlock()
	if key == "" || !keep {
		return nil
	}
	var out []span
	for r, pt := range parts {
		if pt.max < p.lo || pt.min > p.hi {
			continue
		}
		cur := span{r: r, from: -1}
		flush := func() {
			events := min(cur.to*blockSize, pt.len()) - cur.from*blockSize
			if cur.from >= 0 && (chunk < 16 || events*16 >= chunk*blockSize) {
				out = append(out, cur)
			}
			cur.from = -1
		}
		for first := 0; first < len(pt.blocks); first += chunk {
			last := min(first+chunk, len(pt.blocks))
			inside := true
			for _, bl := range pt.blocks[first:last] {
				if bl.min < p.lo || bl.max > p.hi {
					inside = false
					break
				}
			}
			switch {
			case !inside:
				flush()
			case cur.from < 0:
				cur.from, cur.to = first, last
			default:
				cur.to = last
			}
		}
		flush()
	}
	return out
}

// foldPartials adds the covered spans' shares into s: each span's kept
// partial, or one made now by counting the span alone (and kept, unless
// the scan was given up meanwhile).
func (x *Index) foldPartials(s *scratch, p *scanPlan, parts []*part, covered []span, key string, agg *condition.Agg, masked bool) {
	for _, sp := range covered {
		k := partialKey{parts[sp.r], sp.from, sp.to, key}
		pt := x.partials.get(k)
		if pt == nil {
			o := p.scratch.get()
			o.size = p.size
			o.cnt = grow(o.cnt, p.size)
			o.prepare(p.size, agg, masked)
			blocks := o.blocks[:0]
			for b := sp.from; b < sp.to; b++ {
				blocks = append(blocks, uint64(sp.r)<<32|uint64(b))
			}
			o.blocks = blocks
			p.scanBlocks(o, blocks)
			pt = makePartial(o, p.mode)
			p.scratch.put(o)
			if p.ctx.Err() != nil {
				return // given up: the caller checks the context
			}
			x.partials.put(k, pt)
		}
		pt.fold(s, p.mode)
	}
}
