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
// spread events, with the scan's counting partitioned by profile range
// (the default at scale) and not (a cache size so large that it never
// partitions): the ratio is what the partitioning buys.
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
			for _, part := range []bool{true, false} {
				name := fmt.Sprintf("profiles=%d/%s/partitioned=%v", profiles, c.name, part)
				b.Run(name, func(b *testing.B) {
					if part {
						x.SetScanCacheBytes(256 << 10)
					} else {
						x.SetScanCacheBytes(1 << 40)
					}
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
