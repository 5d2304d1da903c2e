package index_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/store"
)

// BenchmarkLoad measures a start's index load (index.LoadWith) of 50,000
// profiles and 1M stored events with ~400-byte properties, second-
// resolution timestamps over 90 days, from a store on disk.
//
//	go test -run XXX -bench BenchmarkLoad -benchtime 3x ./internal/index/
func BenchmarkLoad(b *testing.B) {
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const profiles, events = 50_000, 1_000_000
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	batch := st.DB().NewBatch()
	flush := func() {
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch = st.DB().NewBatch()
	}
	for n := range uint32(profiles) {
		rec := &store.ProfileRecord{ID: fmt.Sprint("user-", n), IDs: []string{fmt.Sprint("user-", n)}, Traits: map[string]any{"plan": "pro", "city": "London"}}
		batch.Set(store.ProfileKey(1, n), store.EncodeProfile(rec), nil)
	}
	for i := range events {
		ts := now.Add(-time.Duration(r.IntN(90*86400)) * time.Second)
		props, _ := json.Marshal(map[string]any{"product_id": fmt.Sprint("sku-", r.IntN(5000)), "category": []string{"Electronics", "Books", "Garden"}[r.IntN(3)],
			"price": float64(r.IntN(50000)) / 100, "quantity": float64(1 + r.IntN(3)), "currency": "USD", "cart": map[string]any{"id": fmt.Sprint("c-", r.IntN(1e6)), "items": float64(r.IntN(9))},
			"url": "https://shop.example.com/p/" + fmt.Sprint(r.IntN(5000)), "referrer": "https://www.google.com/", "session": fmt.Sprint("s-", r.Uint64())})
		batch.Set(store.EventKey(1, store.Day(ts), uint32(r.IntN(profiles)), ts, uint64(i+1)), store.EncodeEvent("Product Viewed", fmt.Sprint("m", i), props), nil)
		if i%100_000 == 0 {
			flush()
		}
	}
	flush()
	if err := st.DB().Flush(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := index.LoadWith(context.Background(), st.DB(), 1, index.LoadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/events, "ns/event")
}
