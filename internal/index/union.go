package index

import (
	"github.com/RoaringBitmap/roaring/v2"
)

// denseUnionParts is the number of parts from which union sets bits in a
// dense bitset rather than merging the parts' containers. Few parts with
// full containers (the days of a presence: 30 bitmaps of 100k numbers at
// 10M profiles) are faster merged (BenchmarkUnion).
const denseUnionParts = 32

// union is the union of parts. roaring's FastOr merges two array
// containers by copying both into a new array, so a union of hundreds of
// sparse parts (a range's buckets of a near-unique number trait at 10M
// profiles: a few thousand bitmaps of ~20 numbers per container; the
// cities of 10M distinct addresses) copies each container's growing
// array once per part, most of the time of such a leaf. From
// denseUnionParts parts on, each part's numbers are set in a bitset as
// wide as the greatest of them, which becomes the result's containers
// without a copy.
func union(parts []*roaring.Bitmap) *roaring.Bitmap {
	if len(parts) < denseUnionParts {
		return roaring.FastOr(parts...)
	}
	return denseUnion(parts)
}

// denseUnion is the union of parts made in a dense bitset.
func denseUnion(parts []*roaring.Bitmap) *roaring.Bitmap {
	var top uint32
	empty := true
	for _, p := range parts {
		if !p.IsEmpty() {
			top, empty = max(top, p.Maximum()), false
		}
	}
	if empty {
		return roaring.New()
	}
	// Whole containers (1,024 words), so that FromDense copies none.
	words := make([]uint64, (uint64(top)/65536+1)*1024)
	buf := make([]uint32, 4096)
	set := func(v uint32) bool {
		words[v>>6] |= 1 << (v & 63)
		return true
	}
	for _, p := range parts {
		if p.GetCardinality() < 256 {
			p.Iterate(set) // a many-iterator is an allocation per part
			continue
		}
		it := p.ManyIterator()
		for n := it.NextMany(buf); n > 0; n = it.NextMany(buf) {
			for _, v := range buf[:n] {
				words[v>>6] |= 1 << (v & 63)
			}
		}
	}
	return roaring.FromDense(words, false)
}
