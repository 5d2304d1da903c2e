package index

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cohortdb/cohort/internal/condition"
)

// TestSweepBitmapIsKeep: the word-at-a-time sweep gives, for every kind of
// leaf and both zeroOK, the numbers with a count whose decision by keep
// differs from zeroOK: counts and distinct counts on both sides of the
// tables' 256, untouched numbers never.
func TestSweepBitmapIsKeep(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, src := range []string{
		`{"event":"v","count":{"op":"gte","value":2}}`,
		`{"event":"v","count":{"op":"lt","value":3}}`,
		`{"event":"v","count":{"op":"gt","value":260}}`,
		`{"event":"v","count":{"op":"between","value":[3,300]}}`,
		`{"event":"v","aggregate":{"fn":"distinct","property":"c","op":"gte","value":3}}`,
		`{"event":"v","count":{"op":"gte","value":2},"aggregate":{"fn":"distinct","property":"c","op":"lt","value":270}}`,
		`{"event":"v","aggregate":{"fn":"sum","property":"p","op":"gt","value":50}}`,
		`{"event":"v","aggregate":{"fn":"avg","property":"p","op":"lte","value":20}}`,
		`{"event":"v","aggregate":{"fn":"max","property":"p","op":"gt","value":40}}`,
	} {
		n, err := condition.Parse([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for _, size := range []int{1, 63, 64, 65, 1000, 4133} {
			s := &scratch{size: size, cnt: make([]uint32, size), dcnt: make([]uint32, size), cells: make([]aggCell, size)}
			for i := range size {
				if r.IntN(3) == 0 {
					continue // untouched: its count 0, the rest left over
				}
				s.cnt[i] = uint32(r.IntN(8))
				if r.IntN(5) == 0 {
					s.cnt[i] = uint32(250 + r.IntN(20))
				}
				s.dcnt[i] = uint32(r.IntN(6))
				if r.IntN(5) == 0 {
					s.dcnt[i] = uint32(250 + r.IntN(30))
				}
				s.cells[i] = aggCell{v: float64(r.IntN(100)), n: uint32(r.IntN(3))}
			}
			cnt, hasCnt := n.EffectiveCount()
			d := newDecider(n, cnt, hasCnt, s)
			for _, zeroOK := range []bool{false, true} {
				var want []uint32
				for i, c := range s.cnt {
					if c != 0 && d.keep(uint32(i)) != zeroOK {
						want = append(want, uint32(i))
					}
				}
				got := d.sweepBitmap(zeroOK, size+r.IntN(200)).ToArray()
				if !slices.Equal(got, want) {
					t.Fatalf("%s, %d numbers, zeroOK %v: swept %d numbers, keep gives %d", src, size, zeroOK, len(got), len(want))
				}
				for _, w := range s.dense {
					if w != 0 {
						t.Fatal("the sweep left its bit set dirty")
					}
				}
			}
		}
	}
}
