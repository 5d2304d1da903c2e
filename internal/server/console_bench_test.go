package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
)

var (
	consoleProfiles = flag.Int("console.profiles", 100_000, "profiles loaded by BenchmarkConsoleLiveCounts")
	consoleEvents   = flag.Int("console.events", 10, "events per profile loaded by BenchmarkConsoleLiveCounts")
)

// The seed articles' examples as the console's builder sends them to
// POST /api/query while they are edited (the builder starts every
// condition as an AND of ORs).
var consoleExamples = []struct{ name, cond string }{
	// MoEngage: added to cart exactly 3 times in the last 7 days.
	{"moengage_cart_3x_7d", `{"and":[{"or":[{"event":"Added To Cart","count":{"op":"eq","value":3},"within":{"last":"7d"}}]}]}`},
	// Bronto's inverted rule logic: rules ORed, criteria ANDed.
	{"bronto_rules_ored", `{"or":[{"and":[{"event":"Song Played"},{"trait":"city","op":"eq","value":"London"}]},{"and":[{"trait":"plan","op":"eq","value":"enterprise"}]}]}`},
	// Bronto's example: rules of criteria with one inverted.
	{"bronto_one_inverted", `{"and":[{"trait":"age","op":"gte","value":21},{"event":"Product Viewed","where":[{"property":"product_category","op":"eq","value":"Books"}],"within":{"last":"30d"}},{"not":{"event":"Order Completed","within":{"last":"30d"}}},{"trait":"plan","op":"neq","value":"free"}]}`},
	// An exclusion of another (saved) segment.
	{"exclude_segment", `{"and":[{"or":[{"event":"Added To Cart","count":{"op":"eq","value":3},"within":{"last":"7d"}}]},{"not":{"segment":"listeners"}}]}`},
	// The README's: electronics in cart 3x this week, never ordered, London.
	{"readme_cart_electronics", `{"and":[{"event":"Added To Cart","where":[{"property":"product_category","op":"eq","value":"Electronics"}],"count":{"op":"gte","value":3},"within":{"last":"7d"}},{"not":{"event":"Order Completed"}},{"trait":"city","op":"eq","value":"London","ignore_case":true}]}`},
}

// BenchmarkConsoleLiveCounts measures what the console's builder waits
// for on every edit: POST /api/query with a seed example, answered with
// the total and every criterion's count, over loopback HTTP from a real
// server holding the generated data set (loaded through the ingestion
// path, then reopened so the index is the one a restarted server loads).
// One op is one request.
//
// The data set is loaded once per run of the benchmark (minutes at 1M
// profiles), so take repetitions with -benchtime rather than -count; the
// median and max of the requests are reported next to the mean (ns/op).
//
//	go test -run XXX -bench BenchmarkConsoleLiveCounts -benchtime 30x ./internal/server/ -args -console.profiles 1000000
func BenchmarkConsoleLiveCounts(b *testing.B) {
	dir := b.TempDir()
	cfg := config.Default()
	cfg.HTTP, cfg.Data = "127.0.0.1:0", dir
	cfg.WriteKey, cfg.APIKey = "wk_console_bench", "ak_console_bench"
	load := time.Now()
	consoleLoad(b, cfg)
	b.Logf("loaded %d profiles and %d events in %s", *consoleProfiles, *consoleProfiles**consoleEvents, time.Since(load).Round(time.Second))

	srv, err := Open(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			b.Error(err)
		}
		if err := srv.Close(); err != nil {
			b.Error(err)
		}
	})
	client := &http.Client{Timeout: 5 * time.Minute}
	base := "http://" + srv.Addr()
	if err := waitReady(ctx, client, base+"/healthz"); err != nil {
		b.Fatal(err)
	}
	api := func(path string, body any) (int, []byte) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, out := api("/api/segments", map[string]any{"id": "listeners", "condition": json.RawMessage(consoleExamples[1].cond)}); code != http.StatusCreated {
		b.Fatalf("create the referenced segment: %d %s", code, out)
	}
	for _, ex := range consoleExamples {
		b.Run(ex.name, func(b *testing.B) {
			var size float64
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				code, out := api("/api/query", map[string]json.RawMessage{"condition": json.RawMessage(ex.cond)})
				took = append(took, time.Since(start))
				var res struct {
					Size     float64 `json:"size"`
					Criteria []any   `json:"criteria"`
				}
				if code != http.StatusOK || json.Unmarshal(out, &res) != nil || len(res.Criteria) == 0 {
					b.Fatalf("POST /api/query: %d %s", code, out)
				}
				size = res.Size
			}
			slices.Sort(took)
			b.ReportMetric(size, "members")
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// consoleLoad writes the generated data set into cfg.Data through the
// ingestion path, from four submitters.
func consoleLoad(b *testing.B, cfg config.Config) {
	srv, err := Open(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			b.Fatal(err)
		}
	}()
	ws, ok := srv.In.WorkspaceByName(DefaultWorkspace)
	if !ok {
		b.Fatal("no default workspace")
	}
	g := gen.New(gen.Config{Seed: 1, Profiles: *consoleProfiles, Events: *consoleProfiles * *consoleEvents, Now: time.Now().UTC(), Days: 30, InOrder: true})
	batches := make(chan []*model.Message, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msgs := range batches {
				items := make([]message.Item, len(msgs))
				for i, m := range msgs {
					m.ReceivedAt = time.Now().UTC()
					items[i] = message.Item{Index: i, MessageID: m.MessageID, Msg: m, Raw: []byte("{}")}
				}
				res, err := srv.In.Submit(context.Background(), ws, "bench", items)
				if err == nil && len(res.Rejected) > 0 {
					err = fmt.Errorf("%d rejected, the first: %v", len(res.Rejected), res.Rejected[0])
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		}()
	}
	const batch = 2000
	ids := g.Identifies()
	for len(ids) > 0 {
		n := min(batch, len(ids))
		batches <- ids[:n]
		ids = ids[n:]
	}
	var cur []*model.Message
	for m := g.Next(); m != nil; m = g.Next() {
		if cur = append(cur, m); len(cur) == batch {
			batches <- cur
			cur = nil
		}
	}
	batches <- cur
	close(batches)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
}
