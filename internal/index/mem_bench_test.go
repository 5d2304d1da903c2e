package index_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// BenchmarkProfileMemory reports the heap an index holds per profile for
// profiles with ids and no traits or events: the per-profile floor that
// the canonical ids set.
//
//	go test -run XXX -bench ProfileMemory -benchtime 1x ./internal/index/
func BenchmarkProfileMemory(b *testing.B) {
	const profiles = 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := index.New()
		c := &ingest.Changes{}
		for n := range uint32(profiles) {
			c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: fmt.Sprintf("user-%08d@example.com", n), New: map[string]any{}})
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
