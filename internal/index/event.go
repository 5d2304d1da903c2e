package index

import (
	"context"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
)

// Event evaluates an event leaf: the profiles whose qualifying events (of
// that name, in the window, passing every where-predicate) satisfy the
// count and aggregate. Profiles with no qualifying event have count 0 and
// an empty aggregate, and are included when those satisfy it. The caller
// holds RLock.
func (x *Index) Event(n *condition.Node, now time.Time) *roaring.Bitmap {
	return x.event(context.Background(), n, now, false)
}

// EventYielding is Event for a caller holding RLock (and only that),
// which may give up and which lets the writer in during a long scan. The
// scan captures the runs and its plan under the lock, then releases it
// while it counts (on every worker), and takes it again to decide the
// profiles: a scan of seconds delays the writer by the short steps before
// and after, not by its length. Every 64 blocks (SetScanYield) it looks at
// ctx and stops when it is done (the answer is then meaningless: the
// caller must check ctx.Err()). The scan reads the runs it captured at
// its start (parts are immutable, and the head's arrays are only appended
// to), so it counts the events of that instant; merges, deletions and the
// live profiles are those at its end. Whatever the caller read from the
// index before the call may have changed after it.
func (x *Index) EventYielding(ctx context.Context, n *condition.Node, now time.Time) *roaring.Bitmap {
	return x.event(ctx, n, now, true)
}

func (x *Index) event(ctx context.Context, n *condition.Node, now time.Time, yield bool) *roaring.Bitmap {
	cnt, hasCnt := n.EffectiveCount()
	zeroOK := (!hasCnt || cnt.Match(0))
	if n.Aggregate != nil {
		zeroOK = zeroOK && n.Aggregate.Match(n.Aggregate.NewState().Result())
	}
	col := x.events[n.Name]
	if col == nil {
		if zeroOK {
			return x.all.Clone()
		}
		return roaring.New()
	}
	if ok, present := presenceOnly(n); ok {
		return x.presence(col, n, now, present, yield)
	}
	s := x.scratch.get()
	defer x.scratch.put(s)
	x.scan(ctx, col, n, now, s, yield)
	// Decide every touched root; the others have count 0 and no values.
	// With zeroOK the answer is all but the touched roots that fail, else
	// the touched roots that pass: either way one set.
	d := newDecider(n, cnt, hasCnt, s)
	var bm *roaring.Bitmap
	if s.sweep() {
		// Most profiles were touched: visit the counts in number order
		// (sequential memory) rather than in the order first touched.
		bm = d.sweepBitmap(zeroOK, int(x.maxNum))
	} else {
		list := s.list[:0]
		for _, root := range s.touched {
			if d.keep(root) != zeroOK {
				list = append(list, root)
			}
		}
		s.list = list
		bm = s.bitmapOf(list, int(x.maxNum))
	}
	if zeroOK {
		return roaring.AndNot(x.all, bm)
	}
	bm.And(x.all)
	return bm
}

// bitmapOf builds a bitmap of the numbers in list, below universe: a
// short list sorted, a long one through a dense bit set (cheaper than
// sorting millions of numbers).
func (s *scratch) bitmapOf(list []uint32, universe int) *roaring.Bitmap {
	if len(list) < universe/64 || len(list) < 4096 {
		slices.Sort(list)
		bm := roaring.New()
		bm.AddMany(list)
		return bm
	}
	words := (universe + 63) / 64
	s.dense = grow(s.dense, words)
	for _, n := range list {
		s.dense[n/64] |= 1 << (n % 64)
	}
	bm := roaring.FromDense(s.dense[:words], true)
	for _, n := range list {
		s.dense[n/64] = 0
	}
	return bm
}

// scratch is one scan's per-profile state, dense over profile numbers and
// pooled between scans: counts, numeric aggregates and the (number,
// value id) pairs of distinct, with the list of the numbers touched so
// that only those are decided and cleared.
type scratch struct {
	cnt     []uint32
	touched []uint32
	list    []uint32
	// Numeric aggregates, folded by op.
	cells []aggCell
	op    aggOp
	// init: the per-number state prepare set up besides the count
	// (accCells, accMask or accCount: none), set by firstTouch.
	init accMode
	// distinct: number<<32 | value id, then the count per number.
	pairs  []uint64
	mask   []uint64 // distinct over at most 64 values: a bit per value id
	dcnt   []uint32
	dense  []uint64   // bitmapOf's bit set, all zero between uses
	stage  []uint64   // a block's qualifying events (number<<32 | value id)
	parts  [][]uint64 // accum's partition buffers, empty between uses
	size   int        // the scan's profile numbers: the arrays' used length
	blocks []uint64   // the blocks a scan reads: run<<32 | block
	fbuf   [][]uint32 // per where-predicate, a block's value ids
	abuf   []uint32   // a block's aggregate value ids
}

// aggCell is one number's numeric aggregate: the scan's one function's
// running value (the sum for sum and avg, else the min or the max) and
// the number of numeric values. 16 bytes: at 10M profiles the cells are
// 160 MB, and each is touched at random.
type aggCell struct {
	v float64
	n uint32
}

// aggOp is how a cell folds a value in: the scan's function.
type aggOp uint8

const (
	opSum aggOp = iota // sum and avg
	opMin
	opMax
)

func opOf(fn condition.AggFn) aggOp {
	switch fn {
	case condition.FnMin:
		return opMin
	case condition.FnMax:
		return opMax
	}
	return opSum
}

// merge folds another cell of the same scan into c.
func (c *aggCell) merge(o *aggCell, op aggOp) {
	switch {
	case o.n == 0:
		return
	case c.n == 0:
		c.v = o.v
	case op == opSum:
		c.v += o.v
	case op == opMin:
		c.v = min(c.v, o.v)
	default:
		c.v = max(c.v, o.v)
	}
	c.n += o.n
}

// reset clears what the scan set, for the next scan.
func (s *scratch) reset() {
	if s.sweep() {
		// Cells and masks are not cleared: a scan sets a number's when it
		// first touches it (its count is 0), and reads only those of
		// numbers it touched. At 10M profiles they are 160 and 80 MB.
		clear(s.cnt[:min(s.size, len(s.cnt))])
		clear(s.dcnt[:min(s.size, len(s.dcnt))])
	} else {
		for _, n := range s.touched {
			s.clear(n)
		}
	}
	s.touched, s.list, s.pairs = s.touched[:0], s.list[:0], s.pairs[:0]
}

// firstTouch lists number n as touched and sets its cells or mask (as
// prepare chose), which the last scan may have left (reset), to empty.
func (s *scratch) firstTouch(n uint32) {
	s.touched = append(s.touched, n)
	switch s.init {
	case accCells:
		s.cells[n] = aggCell{}
	case accMask:
		s.mask[n] = 0
	}
}

// sweep tells whether so many of the scan's profile numbers were touched
// that going through the dense arrays in order beats random access to the
// touched ones.
func (s *scratch) sweep() bool { return len(s.touched) > s.size/32 }

// prepare sizes the arrays the aggregate needs besides the counts.
func (s *scratch) prepare(size int, agg *condition.Agg, masked bool) {
	s.init = accCount
	switch {
	case agg == nil:
	case agg.Fn == condition.FnDistinct:
		s.dcnt = grow(s.dcnt, size)
		if masked {
			s.mask = grow(s.mask, size)
			s.init = accMask
		}
	default:
		s.cells = grow(s.cells, size)
		s.op = opOf(agg.Fn)
		s.init = accCells
	}
}

// merge adds another worker's counts and aggregates of the same scan.
func (s *scratch) merge(o *scratch, mode accMode) {
	add := func(num uint32) {
		if s.cnt[num] == 0 {
			s.firstTouch(num)
		}
		s.cnt[num] += o.cnt[num]
		switch mode {
		case accCells:
			s.cells[num].merge(&o.cells[num], s.op)
		case accMask:
			s.mask[num] |= o.mask[num]
		}
	}
	if o.sweep() {
		for num, c := range o.cnt[:o.size] {
			if c != 0 {
				add(uint32(num))
			}
		}
	} else {
		for _, num := range o.touched {
			add(num)
		}
	}
	s.pairs = append(s.pairs, o.pairs...)
}

// clear zeroes number n's state.
func (s *scratch) clear(n uint32) {
	s.cnt[n] = 0
	if len(s.cells) > int(n) {
		s.cells[n] = aggCell{}
	}
	if len(s.dcnt) > int(n) {
		s.dcnt[n] = 0
	}
	if len(s.mask) > int(n) {
		s.mask[n] = 0
	}
}

func grow[T any](s []T, n int) []T {
	if len(s) >= n {
		return s
	}
	return append(s, make([]T, n-len(s))...)
}

// window is the leaf's window at now in Unix nanoseconds, inclusive,
// within retention.
func (x *Index) window(n *condition.Node, now time.Time) (lo, hi int64) {
	lo, hi = x.retainFrom, math.MaxInt64
	switch n.Window.Kind {
	case condition.WindowLast:
		lo = max(lo, now.Add(-n.Window.Last).UnixNano()+1)
		hi = now.UnixNano()
	case condition.WindowRange:
		lo = max(lo, n.Window.From.UnixNano())
		hi = n.Window.To.UnixNano()
	}
	return lo, hi
}

// presence answers a leaf whose answer depends only on whether a profile
// has an event in the window (presenceOnly): from the parts' presence by
// day and the events of partial days (days.go). With yield, it reads
// without the lock, as scan does.
func (x *Index) presence(col *eventCol, n *condition.Node, now time.Time, has, yield bool) *roaring.Bitmap {
	if cnt, _ := n.EffectiveCount(); cnt.Match(0) == has {
		if has {
			return x.all.Clone() // every count passes
		}
		return roaring.New()
	}
	var f *filterPlan
	if len(n.Where) == 1 {
		w := &n.Where[0]
		pc := col.props[w.Property]
		switch {
		case pc != nil:
			f = pc.decide(w, now)
		case !w.Match(nil, false, now): // no event has the path: none qualifies
			if has {
				return roaring.New()
			}
			return x.all.Clone()
		}
	}
	lo, hi := x.window(n, now)
	runs, days, size := col.snapshot(), col.daysOf(), int(x.maxNum)
	if yield {
		x.scans.Add(1) // the parts taken stay mapped
		defer x.scans.Add(-1)
		x.mu.RUnlock()
	}
	s := x.scratch.get()
	defer x.scratch.put(s)
	list, bms := present(runs, days, f, lo, hi, s.list[:0], nil)
	s.list = list
	raw := roaring.FastOr(append(bms, s.bitmapOf(list, size))...)
	raw.CloneCopyOnWriteContainers() // nothing of a part's mapping stays
	if yield {
		x.mu.RLock()
	}
	var moved *roaring.Bitmap // numbers merged into others
	if !x.merged.IsEmpty() {
		moved = roaring.And(raw, x.merged)
	}
	got := raw // its own: the union is new, its shared containers copied
	got.And(x.all)
	if moved != nil {
		for it := moved.Iterator(); it.HasNext(); {
			if root, ok := x.root(it.Next()); ok {
				got.Add(root)
			}
		}
	}
	if has {
		return got
	}
	return roaring.AndNot(x.all, got)
}

// scan runs over col's qualifying events and leaves in s, for every live
// root profile with at least one, its count and aggregate (s.touched
// lists those roots). A scan over many events is split into contiguous
// runs of blocks counted by parallel workers into scratches of their own,
// then merged into s.
func (x *Index) scan(ctx context.Context, col *eventCol, n *condition.Node, now time.Time, s *scratch, yield bool) {
	p := scanPlan{ctx: ctx, scratch: &x.scratch, runs: col.snapshot(), size: int(x.maxNum), bytes: x.partBytes, aggK: -1, checkEvery: max(x.yieldEvery, 1)}
	parts := slices.Clone(col.parts) // p.runs[:len(parts)] are theirs
	p.lo, p.hi = x.window(n, now)
	s.size = p.size
	s.cnt = grow(s.cnt, p.size)
	// Each where-predicate, decided once per distinct value of its column.
	for i := range n.Where {
		w := &n.Where[i]
		pc := col.props[w.Property]
		if pc == nil {
			if !w.Match(nil, false, now) {
				return // no event can qualify
			}
			continue
		}
		p.filters = append(p.filters, *pc.decide(w, now))
	}
	// The aggregate's column, with each value's number decided once.
	agg := n.Aggregate
	distinct := agg != nil && agg.Fn == condition.FnDistinct
	masked := false // distinct by bit masks rather than sorted pairs
	if agg != nil {
		if pc := col.props[agg.Property]; distinct && (pc == nil || len(pc.dict) <= 64) {
			masked = true
		}
		if pc := col.props[agg.Property]; pc != nil {
			p.aggK = pc.k
			p.nums = make([]float64, len(pc.dict))
			p.nums[0] = math.NaN()
			for id := 1; id < len(pc.dict); id++ {
				v := pc.dict[id]
				if distinct {
					if v == nil {
						p.nums[id] = math.NaN() // null is no value
					}
					continue
				}
				f, ok := condition.Number(v)
				if !ok || math.IsNaN(f) {
					f = math.NaN()
				}
				p.nums[id] = f
			}
		}
	}
	switch {
	case p.aggK < 0:
		p.mode = accCount
	case masked:
		p.mode = accMask
	case distinct:
		p.mode = accPairs
	default:
		p.mode = accCells
	}
	s.prepare(p.size, agg, masked)

	// The spans of parts whose kept share the scan folds in (partial.go),
	// and the other blocks whose time bounds meet the window.
	key := partialLeaf(n, p.mode)
	covered := x.partials.covered(&p, parts, key)
	blocks := s.blocks[:0]
	next := 0 // the first covered span not behind the block
	for r, rn := range p.runs {
		for b, bl := range rn.blocks {
			for next < len(covered) && (covered[next].r < r || covered[next].r == r && covered[next].to <= b) {
				next++
			}
			if next < len(covered) && covered[next].r == r && b >= covered[next].from {
				continue
			}
			if bl.max >= p.lo && bl.min <= p.hi {
				blocks = append(blocks, uint64(r)<<32|uint64(b))
			}
		}
	}
	s.blocks = blocks
	workers := x.scanSplit(len(blocks), p.size) // the settings are read under the lock
	if yield {
		// The scan counts what it captured above without the lock: the
		// runs' arrays are immutable (parts) or only appended to (the
		// head, whose id columns and blocks were copied), and the parts
		// taken stay mapped until the scan ends (Retain defers unmapping
		// what it drops while scans run). The writer goes on meanwhile.
		x.scans.Add(1)
		defer x.scans.Add(-1)
		x.mu.RUnlock()
	}
	scanAll(s, &p, blocks, workers, agg, masked)
	x.foldPartials(s, &p, parts, covered, key, agg, masked)
	if distinct && !masked {
		slices.Sort(s.pairs) // still without the lock
	}
	if yield {
		x.mu.RLock()
		if int(x.maxNum) > s.size {
			// Profiles made while the scan ran: merges may have moved
			// counted numbers onto them.
			s.size = int(x.maxNum)
			s.cnt = grow(s.cnt, s.size)
			s.prepare(s.size, agg, masked)
		}
	}
	x.toRoots(s, agg, masked)
	if masked {
		for _, n := range s.touched {
			s.dcnt[n] = uint32(bits.OnesCount64(s.mask[n]))
		}
	} else if distinct {
		if !slices.IsSorted(s.pairs) {
			slices.Sort(s.pairs) // toRoots moved some onto their roots
		}
		prev := uint64(math.MaxUint64)
		for _, p := range s.pairs {
			if p != prev {
				s.dcnt[p>>32]++
				prev = p
			}
		}
	}
}

// scanAll counts the blocks into s, on that many parallel workers (see
// scanSplit), each with a scratch of its own merged into s.
func scanAll(s *scratch, p *scanPlan, blocks []uint64, workers int, agg *condition.Agg, masked bool) {
	if workers == 1 {
		p.scanBlocks(s, blocks)
		return
	}
	parts := make([]*scratch, workers)
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		o := p.scratch.get()
		o.size = p.size
		o.cnt = grow(o.cnt, p.size)
		o.prepare(p.size, agg, masked)
		parts[w] = o
		from, to := len(blocks)*w/workers, len(blocks)*(w+1)/workers
		wg.Go(func() { p.scanBlocks(o, blocks[from:to]) })
	}
	p.scanBlocks(s, blocks[:len(blocks)/workers])
	wg.Wait()
	for _, o := range parts[1:] {
		s.merge(o, p.mode)
		p.scratch.put(o)
	}
}

// scanSplit returns how many workers scan nblocks blocks for an index of
// size profile numbers (see SetScanParallel).
func (x *Index) scanSplit(nblocks, size int) int {
	n := nblocks * blockSize
	if x.scanWorkers <= 1 || n < x.scanMinEvents || n < x.scanPerProfile*size {
		return 1
	}
	return min(x.scanWorkers, nblocks)
}

// scanPlan is what every worker of one scan shares, read only.
type scanPlan struct {
	ctx        context.Context // scanBlocks stops when it is done
	scratch    *scratches      // the index's, for the workers' scratches
	runs       []*run
	lo, hi     int64 // the window, inclusive, in Unix nanoseconds
	size       int   // profile numbers
	bytes      int   // Index.partBytes
	filters    []filterPlan
	aggK       int       // the aggregate's property column, or -1
	checkEvery int       // blocks between looks at ctx
	nums       []float64 // aggregate value id → number; NaN: not one
	mode       accMode
}

// filterPlan is one where-predicate, decided per value id of its column.
type filterPlan struct {
	k  int // the property column
	ok []bool
}

// decide decides where-predicate w for every value of the column (id 0:
// the event lacks the path).
func (col *propCol) decide(w *condition.Pred, now time.Time) *filterPlan {
	f := &filterPlan{k: col.k, ok: make([]bool, len(col.dict))}
	f.ok[0] = w.Match(nil, false, now)
	for id := 1; id < len(col.dict); id++ {
		f.ok[id] = w.Match(col.dict[id], true, now)
	}
	return f
}

// scanBlocks counts the qualifying events of the given blocks into s.
func (p *scanPlan) scanBlocks(s *scratch, blocks []uint64) {
	a := accum{s: s, nums: p.nums, bytes: p.bytes, mode: p.mode}
	a.partition(p.size)
	s.fbuf = grow(s.fbuf, len(p.filters))
	bufs := s.fbuf[:len(p.filters)]
	stage := s.stage[:0]
	for k, ref := range blocks {
		if k%p.checkEvery == p.checkEvery-1 && p.ctx.Err() != nil {
			return // given up: the caller checks the context
		}
		col, b := p.runs[ref>>32], int(uint32(ref))
		bl := col.blocks[b]
		start, end := b*blockSize, min((b+1)*blockSize, len(col.prof))
		for k, f := range p.filters {
			bufs[k] = col.decodeIDs(f.k, grow(bufs[k], blockSize), start, end)
		}
		var aggBlock []uint32
		if p.aggK >= 0 {
			s.abuf = col.decodeIDs(p.aggK, grow(s.abuf, blockSize), start, end)
			aggBlock = s.abuf
		}
		// Stage the block's qualifying events as number<<32 | value id
		// (sequential work), then count them (random access by number).
		stage = stage[:0]
		// A block wholly inside the window needs no timestamp read.
		inside := bl.min >= p.lo && bl.max <= p.hi
	events:
		for i := start; i < end; i++ {
			if !inside {
				if t := col.ts[i]; t < p.lo || t > p.hi {
					continue
				}
			}
			for k, f := range p.filters {
				if !f.ok[bufs[k][i-start]] {
					continue events
				}
			}
			e := uint64(col.prof[i]) << 32
			if aggBlock != nil {
				e |= uint64(aggBlock[i-start])
			}
			stage = append(stage, e)
		}
		a.add(stage)
	}
	s.stage = stage
	a.flush()
}

// toRoots moves the state of numbers merged into others onto their live
// roots and drops deleted ones, leaving s.touched a list of live roots.
func (x *Index) toRoots(s *scratch, agg *condition.Agg, masked bool) {
	if x.merged.IsEmpty() && x.deleted.IsEmpty() {
		return
	}
	n := len(s.touched)
	moved := map[uint32]uint32{} // number → its root, for distinct's pairs
	for _, num := range s.touched[:n] {
		root, live := x.root(num)
		if live && root == num {
			continue
		}
		if !live {
			moved[num] = math.MaxUint32
			s.clear(num)
			continue
		}
		moved[num] = root
		if s.cnt[root] == 0 { // the root had no events of its own
			s.firstTouch(root)
		}
		s.cnt[root] += s.cnt[num]
		if masked {
			s.mask[root] |= s.mask[num]
		}
		if agg != nil && agg.Fn != condition.FnDistinct {
			s.cells[root].merge(&s.cells[num], s.op)
		}
		s.clear(num)
	}
	if len(moved) == 0 {
		return
	}
	// The moved numbers' state is cleared: drop them from the decisions.
	s.touched = slices.DeleteFunc(s.touched, func(num uint32) bool {
		_, ok := moved[num]
		return ok
	})
	for i, p := range s.pairs {
		if r, ok := moved[uint32(p>>32)]; ok {
			if r == math.MaxUint32 {
				s.pairs[i] = math.MaxUint64 // dropped below
			} else {
				s.pairs[i] = uint64(r)<<32 | p&math.MaxUint32
			}
		}
	}
	if len(s.pairs) > 0 {
		s.pairs = slices.DeleteFunc(s.pairs, func(p uint64) bool { return p == math.MaxUint64 })
	}
}
