package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
)

// Past keepAllEvents events, the acknowledged batches kept to send again
// after the restart are a sample (all of them would not fit in memory at
// 10M profiles: 200M events are about 80 GB of JSON).
const (
	keepAllEvents = 5_000_000
	sampleEvery   = 1000
	sampleTail    = 2000
)

// batch is one POST /v1/batch body with its message and event counts.
type batch struct {
	body   []byte
	msgs   int
	events int
}

// ackedSet keeps the acknowledged batches to send again: all of them, or
// every sampleEvery-th and, of the others, the last sampleTail.
type ackedSet struct {
	mu      sync.Mutex
	sampled bool
	n, t    int     // batches added, of them into the tail
	kept    []batch // all, or every sampleEvery-th
	tail    []batch // when sampled, a ring of the last sampleTail others
}

func (a *ackedSet) add(b batch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	switch {
	case !a.sampled || a.n%sampleEvery == 0:
		a.kept = append(a.kept, b)
	case len(a.tail) < sampleTail:
		a.tail = append(a.tail, b)
	default:
		a.tail[a.t%sampleTail] = b
	}
	if a.sampled && a.n%sampleEvery != 0 {
		a.t++
	}
}

func (a *ackedSet) batches() []batch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(append([]batch(nil), a.kept...), a.tail...)
}

// loadUntilKill sends the data set until killAfter of its events are
// acknowledged, then kills the server; it returns the acknowledged
// batches kept to send again.
func loadUntilKill(ctx context.Context, o restartOpts, srv *target, res *restartResult) (*ackedSet, error) {
	work := make(chan batch, 4*o.clients)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		acked   = &ackedSet{sampled: o.data.Events > keepAllEvents}
		msgs    atomic.Int64
		events  atomic.Int64
		sent    atomic.Int64
		killed  atomic.Bool
		killAt  = int64(o.killAfter * float64(o.data.Events))
		wg      sync.WaitGroup
		genErr  error
		start   = time.Now()
		onceErr error
	)
	go func() {
		defer close(work)
		genErr = generateBatches(ctx, o, func(b batch) bool {
			select {
			case work <- b:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	client := &http.Client{Timeout: time.Minute}
	for range o.clients {
		wg.Go(func() {
			for b := range work {
				if killed.Load() {
					continue
				}
				sent.Add(int64(b.events))
				if err := postBatch(ctx, client, srv.base, srv.writeKey, b.body); err != nil {
					if !killed.Load() {
						mu.Lock()
						onceErr = errors.Join(onceErr, err)
						mu.Unlock()
						cancel()
					}
					continue
				}
				if killed.Load() {
					continue // answered after the kill was decided: not counted
				}
				acked.add(b)
				msgs.Add(int64(b.msgs))
				if events.Add(int64(b.events)) >= killAt && killed.CompareAndSwap(false, true) {
					res.load = time.Since(start)
					srv.child.kill() // requests in flight fail: never acknowledged
					cancel()         // and the generator stops
				}
			}
		})
	}
	wg.Wait()
	if onceErr != nil {
		return nil, onceErr
	}
	if genErr != nil && !killed.Load() {
		return nil, genErr
	}
	if !killed.Load() {
		return nil, errors.New("the data set ran out before the kill: raise --events or lower --kill-after")
	}
	res.acked, res.ackedEvents, res.sentEvents = msgs.Load(), events.Load(), sent.Load()
	return acked, nil
}

// generateBatches encodes the data set as POST /v1/batch bodies of
// o.batch messages (identifies, then events in generation order) and
// hands each to emit; emit false stops. The generator runs on this
// goroutine; two more encode its batches to JSON, so batches may reach
// emit out of order, as several SDK clients' batches do.
func generateBatches(ctx context.Context, o restartOpts, emit func(batch) bool) error {
	// The events are of the last 30 days by the server's clock: with the
	// other benchmarks' fixed date they would be past the server's
	// retention, and its sweep at start would drop them.
	now := time.Now().UTC().Truncate(time.Hour)
	g := gen.New(gen.Config{Seed: o.data.Seed, Profiles: o.data.Profiles, Events: o.data.Events,
		Now: now, Days: 30, InOrder: o.data.InOrder})
	raw := make(chan []*model.Message, 16)
	var wg sync.WaitGroup
	var stopped atomic.Bool
	for range 2 {
		wg.Go(func() {
			for msgs := range raw {
				if stopped.Load() {
					continue
				}
				b, err := encodeBatch(msgs)
				if err != nil || !emit(b) {
					stopped.Store(true)
				}
			}
		})
	}
	buf := make([]*model.Message, 0, o.batch)
	add := func(m *model.Message) bool {
		buf = append(buf, m)
		if len(buf) < o.batch {
			return true
		}
		select {
		case raw <- buf:
		case <-ctx.Done():
			return false
		}
		buf = make([]*model.Message, 0, o.batch)
		return !stopped.Load()
	}
	ok := true
	for _, m := range g.EachIdentify {
		if ok = add(m); !ok {
			break
		}
	}
	for m := g.Next(); ok && m != nil; m = g.Next() {
		ok = add(m)
	}
	if ok && len(buf) > 0 {
		select {
		case raw <- buf:
		case <-ctx.Done():
		}
	}
	close(raw)
	wg.Wait()
	return ctx.Err()
}

// wireMessage is a message as an SDK sends it.
type wireMessage struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	PreviousID  string         `json:"previousId,omitempty"`
	Event       string         `json:"event,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Properties  map[string]any `json:"properties,omitempty"`
	Timestamp   string         `json:"timestamp,omitempty"`
}

func encodeBatch(msgs []*model.Message) (batch, error) {
	wire := make([]wireMessage, len(msgs))
	events := 0
	for i, m := range msgs {
		wire[i] = wireMessage{Type: string(m.Type), MessageID: m.MessageID, UserID: m.UserID,
			AnonymousID: m.AnonymousID, PreviousID: m.PreviousID, Event: m.Event,
			Traits: m.Traits, Properties: m.Properties}
		if !m.Timestamp.IsZero() {
			wire[i].Timestamp = m.Timestamp.UTC().Format(time.RFC3339)
		}
		if m.Type == model.Track {
			events++
		}
	}
	body, err := json.Marshal(struct {
		Batch []wireMessage `json:"batch"`
	}{wire})
	return batch{body: body, msgs: len(msgs), events: events}, err
}

func postBatch(ctx context.Context, client *http.Client, base, writeKey string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"success":true`)) {
		return fmt.Errorf("POST /v1/batch: %s %.300s", resp.Status, answer)
	}
	return nil
}

// memAfterGC is a child server's memory right after a full collection.
type memAfterGC struct {
	anon         uint64 // RSS, anonymous
	heapInuse    uint64 // Go heap spans in use
	heapIdleKept uint64 // idle heap spans not yet returned to the OS
	runtimeOther uint64 // stacks, span and GC metadata, other runtime memory
}

// gcAndMeasure makes the child collect (GET /debug/pprof/heap?gc=1, with
// its admin key), writes that heap profile to heapFile when it is not "",
// then reads its RSS and the Go runtime's memory figures (/metrics).
func gcAndMeasure(ctx context.Context, client *http.Client, t *target, heapFile string) (memAfterGC, error) {
	var m memAfterGC
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return m, err
	}
	req.Header.Set("Authorization", "Bearer "+t.adminKey)
	resp, err := client.Do(req)
	if err != nil {
		return m, fmt.Errorf("GET /debug/pprof/heap: %w", err)
	}
	profile, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /debug/pprof/heap: %s %v %.200s", resp.Status, err, profile)
	}
	if heapFile != "" {
		if err := os.WriteFile(heapFile, profile, 0o644); err != nil {
			return m, fmt.Errorf("heap profile: %w", err)
		}
	}
	m.anon, _ = childRSS(t.child)
	s, err := scrapeMetrics(ctx, client, t.base+"/metrics")
	if err != nil {
		return m, err
	}
	u := func(k string) uint64 { return uint64(s[k]) }
	m.heapInuse = u("go_memstats_heap_inuse_bytes")
	m.heapIdleKept = u("go_memstats_heap_idle_bytes") - u("go_memstats_heap_released_bytes")
	m.runtimeOther = u("go_memstats_stack_inuse_bytes") + u("go_memstats_mspan_inuse_bytes") +
		u("go_memstats_mcache_inuse_bytes") + u("go_memstats_gc_sys_bytes") + u("go_memstats_other_sys_bytes") +
		u("go_memstats_buck_hash_sys_bytes")
	return m, nil
}
