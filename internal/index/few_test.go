package index

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// TestValEntryIsSet runs random adds and removes on a value's entry and
// on a plain set side by side, with profile numbers spread over 10M (an
// entry stays a list) or packed into a few thousand (it becomes a
// bitmap), and checks every answer: add and remove's results, the count,
// contains, the bitmap, what gather collects, and set from a bitmap.
func TestValEntryIsSet(t *testing.T) {
	for _, spread := range []uint32{10_000_000, 3000, 70_000} {
		for seed := range uint64(4) {
			r := rand.New(rand.NewPCG(seed, uint64(spread)))
			e := newValEntry(1.5)
			want := map[uint32]bool{}
			sawList, sawBitmap := false, false
			for op := range 20_000 {
				num := r.Uint32N(spread)
				if len(want) > 0 && r.IntN(3) == 0 {
					for n := range want { // an existing number
						num = n
						break
					}
				}
				grow := r.IntN(100) < 60-int(seed)*10 // later seeds shrink back
				if grow {
					if got := e.add(num); got == want[num] {
						t.Fatalf("spread %d seed %d op %d: add(%d) = %v with it held %v", spread, seed, op, num, got, want[num])
					}
					want[num] = true
				} else {
					if got := e.remove(num); got != want[num] {
						t.Fatalf("spread %d seed %d op %d: remove(%d) = %v with it held %v", spread, seed, op, num, got, want[num])
					}
					delete(want, num)
				}
				sawList = sawList || e.few != nil
				sawBitmap = sawBitmap || e.bm != nil
				if int(e.n) != len(want) || e.contains(num) != want[num] || (e.few != nil && e.bm != nil) {
					t.Fatalf("spread %d seed %d op %d: n %d (want %d), contains(%d) %v (want %v)", spread, seed, op, e.n, len(want), num, e.contains(num), want[num])
				}
				if op%500 == 0 {
					sameEntry(t, e, want)
				}
			}
			sameEntry(t, e, want)
			if !sawList || (spread < 100_000 && seed == 0 && !sawBitmap) {
				t.Fatalf("spread %d seed %d: list seen %v, bitmap seen %v: the test did not reach both forms", spread, seed, sawList, sawBitmap)
			}
		}
	}
}

func sameEntry(t *testing.T, e *valEntry, want map[uint32]bool) {
	t.Helper()
	nums := slices.Sorted(maps.Keys(want))
	if got := e.bitmap().ToArray(); !slices.Equal(got, nums) {
		t.Fatalf("bitmap %v, want %v", got, nums)
	}
	var g gather
	g.add(e)
	if got := g.union().ToArray(); !slices.Equal(got, nums) {
		t.Fatalf("gathered %v, want %v", got, nums)
	}
	var s valEntry
	s.set(roaring.BitmapOf(nums...))
	if int(s.n) != len(nums) || (len(nums) > 1 && s.few == nil && s.bm == nil) || !slices.Equal(s.bitmap().ToArray(), e.bitmap().ToArray()) {
		t.Fatalf("set: n %d, bitmap %v, want %v", s.n, s.bitmap().ToArray(), nums)
	}
}

// TestListOrBitmapBySize checks the choice: a value held by profiles
// spread over 10M numbers stays a list, one held by a dense run becomes
// a bitmap.
func TestListOrBitmapBySize(t *testing.T) {
	spread, dense := newValEntry(1.0), newValEntry(2.0)
	for i := range uint32(1000) {
		spread.add(i * 9973)
		dense.add(i)
	}
	if spread.few == nil || spread.bm != nil {
		t.Fatalf("1,000 profiles spread over 10M: list %v, bitmap %v; want a list", spread.few != nil, spread.bm != nil)
	}
	if dense.bm == nil || dense.few != nil {
		t.Fatalf("1,000 profiles in one container: list %v, bitmap %v; want a bitmap", dense.few != nil, dense.bm != nil)
	}
	if !listSmaller(spread.bitmap()) || listSmaller(dense.bitmap()) {
		t.Fatal("listSmaller disagrees with the choice add made")
	}
}
