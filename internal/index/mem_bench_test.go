package index_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// BenchmarkProfileMemory reports the heap an index holds per profile for
// profiles with ids and no events: with no traits (the per-profile floor
// the canonical ids set), and with a unique email and a signup timestamp
// (high-cardinality traits, one value per profile).
//
//	go test -run XXX -bench ProfileMemory -benchtime 1x ./internal/index/
func BenchmarkProfileMemory(b *testing.B) {
	b.Run("ids", func(b *testing.B) { profileMemory(b, func(uint32) map[string]any { return map[string]any{} }) })
	b.Run("unique_traits", func(b *testing.B) {
		profileMemory(b, func(n uint32) map[string]any {
			return map[string]any{"email": fmt.Sprintf("user-%08d@example.com", n),
				"signup": fmt.Sprintf("2025-%02d-%02dT%02d:%02d:%02dZ", 1+n%12, 1+n%28, n%24, (n/24)%60, (n/1440)%60)}
		})
	})
}

func profileMemory(b *testing.B, traits func(uint32) map[string]any) {
	const profiles = 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := index.New()
		c := &ingest.Changes{}
		for n := range uint32(profiles) {
			c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: fmt.Sprintf("user-%08d@example.com", n), New: traits(n)})
			if len(c.Profiles) == 10_000 {
				x.Apply(c)
				c = &ingest.Changes{}
			}
		}
		x.Apply(c)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/profiles, "heap-B/profile")
		runtime.KeepAlive(x)
	}
}
