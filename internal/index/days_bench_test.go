package index

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkMakeDays: the presence by day of a part of 1M events of 10M
// profiles, over about two days (events mostly in order, one in ten up to
// 30 days late), with one property of ten values: the work a seal adds.
func BenchmarkMakeDays(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1 << 20
	prof, ts, cat := make([]uint32, n), make([]int64, n), newIDCol(0)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range prof {
		prof[i] = uint32(r.IntN(10_000_000))
		ts[i] = t0 + int64(i)*int64(150*time.Millisecond)
		if r.IntN(10) == 0 {
			ts[i] -= r.Int64N(int64(30 * 24 * time.Hour))
		}
		cat.add(uint32(1 + r.IntN(10)))
	}
	run := &run{prof: prof, ts: ts, ids: []*idCol{&cat}}
	b.ResetTimer()
	for range b.N {
		makeDays(run)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}
