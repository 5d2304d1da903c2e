package index

import (
	"github.com/RoaringBitmap/roaring/v2"
)

// What a roaring bitmap costs in the heap, roughly: the Bitmap and its
// three slices, then per container a key, an interface in the container
// slice, a copy-on-write flag and the container's own slice header and
// allocation (array containers: 2 bytes a profile).
const (
	bitmapBytes    = 96
	containerBytes = 51
)

// bitmapSize estimates the heap bytes of a roaring bitmap of the sorted
// numbers in list: array containers, one per distinct high 16 bits.
func bitmapSize(list []uint32) int {
	keys := 0
	for i, n := range list {
		if i == 0 || n>>16 != list[i-1]>>16 {
			keys++
		}
	}
	return bitmapBytes + keys*containerBytes + 2*len(list)
}

// maybeBitmap turns the list into a bitmap once the bitmap is the
// smaller. The list is measured each time its length reaches a power of
// two from 16, so growing it costs O(1) amortised.
func (e *valEntry) maybeBitmap() {
	l := len(e.few)
	if l < 16 || l&(l-1) != 0 || 4*l < bitmapSize(e.few) {
		return
	}
	e.bm, e.few = roaring.BitmapOf(e.few...), nil
}

// listSmaller says whether a sorted list of bm's numbers is smaller than
// bm.
func listSmaller(bm *roaring.Bitmap) bool {
	n := int(bm.GetCardinality())
	return n <= 1<<16 && 4*n < bitmapBytes+int(bm.Stats().Containers)*containerBytes+2*n
}
