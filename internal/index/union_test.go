package index

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// randomParts makes n bitmaps of about per numbers each below size, some
// of them dense, some empty.
func randomParts(r *rand.Rand, n, per int, size uint32) []*roaring.Bitmap {
	parts := make([]*roaring.Bitmap, n)
	for i := range parts {
		bm := roaring.New()
		switch r.IntN(8) {
		case 0: // empty
		case 1: // a dense run
			lo := r.Uint32N(size)
			bm.AddRange(uint64(lo), uint64(min(size, lo+uint32(r.IntN(200000)))))
		default:
			for range r.IntN(2 * per) {
				bm.Add(r.Uint32N(size))
			}
		}
		if r.IntN(3) == 0 {
			bm.RunOptimize()
		}
		parts[i] = bm
	}
	return parts
}

// TestUnionIsFastOr: the dense union is the union, on every side of
// denseUnionParts, for sparse, dense, run-coded and empty parts.
func TestUnionIsFastOr(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{0, 1, 5, denseUnionParts - 1, denseUnionParts, 100, 400} {
		for _, size := range []uint32{100, 70000, 3_000_000} {
			parts := randomParts(r, n, 50, size)
			got, want := union(parts), roaring.FastOr(parts...)
			if !got.Equals(want) || got.GetCardinality() != want.GetCardinality() {
				t.Fatalf("%d parts below %d: union has %d numbers, FastOr %d", n, size, got.GetCardinality(), want.GetCardinality())
			}
			got.Add(size + 1) // the result is the caller's to change
			for _, p := range parts {
				if p.Contains(size + 1) {
					t.Fatalf("changing the union changed a part")
				}
			}
		}
	}
}

// BenchmarkUnion compares the dense union with FastOr on the buckets of a
// range over a near-unique number trait (sqrt(N) buckets of sqrt(N)
// random profile numbers each, a fifth of them taken), and on the days of
// a 30-day presence (30 bitmaps of N/100 random numbers).
func BenchmarkUnion(b *testing.B) {
	for _, size := range []int{1_000_000, 10_000_000} {
		sqrt := 1
		for sqrt*sqrt < size {
			sqrt++
		}
		for _, shape := range []struct {
			name   string
			n, per int
		}{{"range", sqrt / 5, sqrt}, {"days", 30, size / 100}} {
			r := rand.New(rand.NewPCG(1, 2))
			parts := make([]*roaring.Bitmap, shape.n)
			for i := range parts {
				nums := make([]uint32, shape.per)
				for j := range nums {
					nums[j] = r.Uint32N(uint32(size))
				}
				parts[i] = roaring.BitmapOf(nums...)
			}
			b.Run(fmt.Sprintf("%s/profiles=%d/FastOr", shape.name, size), func(b *testing.B) {
				for b.Loop() {
					roaring.FastOr(parts...)
				}
			})
			b.Run(fmt.Sprintf("%s/profiles=%d/dense", shape.name, size), func(b *testing.B) {
				for b.Loop() {
					denseUnion(parts)
				}
			})
		}
	}
}
