package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHTTPIngestBatch100 posts 100-message batches of ~400-byte track
// events to POST /v1/batch of a real server (default configuration: every
// answer waits for the WAL fsync) over loopback HTTP, from 16 goroutines per
// CPU. One op is one request; events/s is the figure that matters. For
// latency percentiles and an open-loop rate, use `cohort-bench ingest`.
//
//	go test -run XXX -bench BenchmarkHTTPIngestBatch100 ./internal/server/
func BenchmarkHTTPIngestBatch100(b *testing.B) {
	const batch = 100
	l := startLive(b, nil, Options{})
	ctx := context.Background()
	tmpl := newBenchBodies(64, batch, time.Now())
	url := l.url + "/v1/batch"
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: time.Minute}

	var next, seq atomic.Uint64
	b.SetBytes(int64(tmpl.meanBody))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, tmpl.maxBody)
		for pb.Next() {
			buf = tmpl.fill(buf, next.Add(1)-1, seq.Add(batch)-batch)
			if err := postBatch(ctx, client, url, testWriteKey, buf); err != nil {
				b.Error(err)
				return
			}
			// postBatch waited until the transport closed the body: the
			// buffer is free again.
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

func waitReady(ctx context.Context, client *http.Client, url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postBatch sends one body and fails unless the answer is 200
// {"success": true}. It returns only once the transport has closed the
// request body, so the caller may reuse it.
func postBatch(ctx context.Context, client *http.Client, url, key string, body []byte) error {
	rb := &closedBody{Reader: bytes.NewReader(body), closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, rb)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(key, "")
	resp, err := client.Do(req)
	defer func() { <-rb.closed }()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var r struct {
		Success bool `json:"success"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &r) != nil || !r.Success {
		return fmt.Errorf("POST /v1/batch: %s %s", resp.Status, data)
	}
	return nil
}

type closedBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (c *closedBody) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// benchBodies are pre-generated batch bodies whose messageIds end in 16
// hex digits that fill overwrites with a unique sequence number, so that no
// message is a duplicate and no JSON is encoded while the benchmark runs.
type benchBodies struct {
	bodies   [][]byte
	offsets  [][]int
	meanBody float64
	maxBody  int
}

func newBenchBodies(n, batch int, now time.Time) *benchBodies {
	r := rand.New(rand.NewPCG(1, 2))
	users := rand.NewZipf(r, 1.1, 300, 99999) // as cohort-bench ingest: top 1% of users send 31%
	names := rand.NewZipf(r, 1.2, 1, 49)
	sentAt := now.UTC().Format("2006-01-02T15:04:05.000Z")
	bb := &benchBodies{}
	total := 0
	for range n {
		var body []byte
		var offs []int
		body = append(body, `{"batch":[`...)
		for i := range batch {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"type":"track","messageId":"bench-`...)
			offs = append(offs, len(body))
			body = append(body, strings.Repeat("0", 16)...)
			ts := now.Add(-time.Duration(r.IntN(5000)) * time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z")
			body = fmt.Appendf(body, `","userId":"user-%07d","event":"Event %02d",`+
				`"properties":{"product_id":"prod_%05d","price":%d.99,"quantity":%d,"in_stock":%t,"category":"electronics","coupon":null,"tags":["sale","new"]},`+
				`"context":{"ip":"10.%d.%d.%d","library":{"name":"analytics-node","version":"6.2.0"}},`+
				`"timestamp":"%s","sentAt":"%s"}`,
				users.Uint64(), names.Uint64(), r.IntN(20000), r.IntN(500), 1+r.IntN(5), r.IntN(10) > 0,
				r.IntN(256), r.IntN(256), 1+r.IntN(254), ts, sentAt)
		}
		body = append(body, `]}`...)
		bb.bodies = append(bb.bodies, body)
		bb.offsets = append(bb.offsets, offs)
		total += len(body)
		bb.maxBody = max(bb.maxBody, len(body))
	}
	bb.meanBody = float64(total) / float64(n)
	return bb
}

func (bb *benchBodies) fill(buf []byte, k, first uint64) []byte {
	i := k % uint64(len(bb.bodies))
	buf = append(buf[:0], bb.bodies[i]...)
	for j, off := range bb.offsets[i] {
		v := first + uint64(j)
		for d := off + 15; d >= off; d-- {
			buf[d] = "0123456789abcdef"[v&15]
			v >>= 4
		}
	}
	return buf
}
