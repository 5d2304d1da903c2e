package index

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/model"
)

// sortedVals is a trait's distinct values of one ordered kind (numbers, or
// date-times as instants) sorted by key, with their entries, and buckets:
// the unions of runs of consecutive values, so that a range over many
// distinct values is a union of a few hundred bitmaps. It is rebuilt by
// readers when a distinct value appeared or vanished (traitIdx.numDirty),
// and its buckets are kept current by the change feed otherwise.
type sortedVals[K cmp.Ordered] struct {
	keys    []K
	vals    []*valEntry
	buckets []*roaring.Bitmap
	bsize   int
}

func (s *sortedVals[K]) reset() {
	s.keys, s.vals, s.buckets = s.keys[:0], s.vals[:0], nil
}

func (s *sortedVals[K]) add(k K, e *valEntry) {
	s.keys = append(s.keys, k)
	s.vals = append(s.vals, e)
}

// sort sorts the values by key. It sorts (key, entry) pairs in one slice:
// sort.Sort over the two slices made every comparison and swap an
// interface call, most of the first range query over a near-unique trait
// (ltv at 10M profiles: 6-9 s).
func (s *sortedVals[K]) sort() {
	type kv struct {
		k K
		e *valEntry
	}
	pairs := make([]kv, len(s.keys))
	for i, k := range s.keys {
		pairs[i] = kv{k, s.vals[i]}
	}
	slices.SortFunc(pairs, func(a, b kv) int { return cmp.Compare(a.k, b.k) })
	for i, p := range pairs {
		s.keys[i], s.vals[i] = p.k, p.e
	}
}

// rangeParts returns the bitmaps whose union is the profiles with a key
// in the range: whole buckets and the single values at the edges.
func (s *sortedVals[K]) rangeParts(lo K, loIncl bool, hi K, hiIncl bool) []*roaring.Bitmap {
	keys := s.keys
	i := sort.Search(len(keys), func(i int) bool { return keys[i] > lo || (loIncl && keys[i] == lo) })
	j := sort.Search(len(keys), func(j int) bool { return keys[j] > hi || (!hiIncl && keys[j] == hi) })
	if j <= i {
		return nil
	}
	var g gather
	single := func(from, to int) {
		for _, e := range s.vals[from:to] {
			g.add(e)
		}
	}
	if j-i < 2*minBucket {
		single(i, j)
		return g.bitmaps()
	}
	if s.buckets == nil {
		s.bsize = max(minBucket, int(math.Sqrt(float64(len(keys)))))
		for k := 0; k < len(keys); k += s.bsize {
			var b gather
			for _, e := range s.vals[k:min(k+s.bsize, len(keys))] {
				b.add(e)
			}
			s.buckets = append(s.buckets, b.union())
		}
	}
	bs := s.bsize
	first, last := (i+bs-1)/bs, j/bs // whole buckets [first, last)
	if first >= last {
		single(i, j)
		return g.bitmaps()
	}
	single(i, first*bs)
	g.parts = append(g.parts, s.buckets[first:last]...)
	single(last*bs, j)
	return g.bitmaps()
}

// move keeps the buckets current when num's key moves between existing
// distinct values (ok reports that the value has a key of this kind).
func (s *sortedVals[K]) move(num uint32, old K, hadOld bool, cur K, hasCur bool) {
	if s.buckets == nil {
		return
	}
	bucket := func(k K) int {
		i, found := slices.BinarySearch(s.keys, k)
		if !found {
			return -1
		}
		return i / s.bsize
	}
	if hadOld {
		if b := bucket(old); b >= 0 {
			s.buckets[b].Remove(num)
		}
	}
	if hasCur {
		if b := bucket(cur); b >= 0 {
			s.buckets[b].Add(num)
		}
	}
}

// minBucket is the least number of distinct values per bucket.
const minBucket = 64

// instantOf is a value's instant in Unix nanoseconds when it is a
// date-time string (parsed once, when its entry is made). ok is false for
// other values; out reports a date-time outside the years 1678–2262,
// which only the general path compares.
func instantOf(v any) (ns int64, ok, out bool) {
	s, isStr := v.(string)
	if !isStr {
		return 0, false, false
	}
	t, isTime := model.ParseTime(s)
	if !isTime {
		return 0, false, false
	}
	if t.Before(minInstant) || t.After(maxInstant) {
		return 0, false, true
	}
	return t.UnixNano(), true, false
}

var (
	minInstant = time.Unix(0, math.MinInt64+1)
	maxInstant = time.Unix(0, math.MaxInt64-1)
)
