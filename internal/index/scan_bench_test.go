package index_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// BenchmarkEventScan measures one event leaf over a column of uniformly
// spread events: counted directly, partitioned by profile range (the
// default at scale), and partitioned with the blocks split over two
// workers. The ratios are what partitioning and workers buy.
//
//	go test -run XXX -bench EventScan -benchtime 10x ./internal/index/
func BenchmarkEventScan(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, profiles := range []int{1_000_000, 10_000_000} {
		events := 20_000_000
		x := loadScanIndex(profiles, events, now)
		for _, c := range []struct{ name, cond string }{
			{"count", `{"event":"E","count":{"op":"gte","value":3}}`},
			{"sum", `{"event":"E","aggregate":{"fn":"sum","property":"v","op":"gt","value":500}}`},
			{"distinct", `{"event":"E","aggregate":{"fn":"distinct","property":"cat","op":"gte","value":3}}`},
		} {
			n, err := condition.Parse([]byte(c.cond))
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range []struct {
				name       string
				cacheBytes int // 1<<40: never partitioned
				workers    int
			}{{"direct", 1 << 40, 1}, {"partitioned", 256 << 10, 1}, {"partitioned-2workers", 256 << 10, 2}} {
				b.Run(fmt.Sprintf("profiles=%d/%s/%s", profiles, c.name, v.name), func(b *testing.B) {
					x.SetScanCacheBytes(v.cacheBytes)
					x.SetScanParallel(v.workers, 1<<20, 0)
					x.RLock()
					defer x.RUnlock()
					var size uint64
					for b.Loop() {
						size = x.Event(n, now).GetCardinality()
					}
					b.ReportMetric(float64(size), "members")
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(events), "ns/event")
				})
			}
		}
	}
}

func loadScanIndex(profiles, events int, now time.Time) *index.Index {
	x := index.New()
	r := rand.New(rand.NewPCG(1, 2))
	var c ingest.Changes
	for p := range profiles {
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: uint32(p), NewID: fmt.Sprint(p), New: map[string]any{}})
		if len(c.Profiles) == 100_000 {
			x.Apply(&c)
			c.Profiles = c.Profiles[:0]
		}
	}
	x.Apply(&c)
	c.Profiles = nil
	cats := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i := range events {
		c.Events = append(c.Events, ingest.EventAdded{
			Num: uint32(r.IntN(profiles)), Seq: uint64(i), Name: "E",
			Timestamp:  now.Add(-time.Duration(r.Int64N(int64(30 * 24 * time.Hour)))),
			Properties: map[string]any{"cat": cats[r.IntN(len(cats))], "v": float64(r.IntN(1000))},
		})
		if len(c.Events) == 100_000 {
			x.Apply(&c)
			c.Events = c.Events[:0]
		}
	}
	x.Apply(&c)
	return x
}
