package message

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// trackEvent is a track call as analytics-node sends it, about 400 bytes.
func trackEvent(i int) string {
	return fmt.Sprintf(`{"type":"track","event":"Order Completed","userId":"user-%06d",`+
		`"anonymousId":"5f2b6c1e-8a1d-4c3e-9b7a-%012d","messageId":"node-%020d",`+
		`"timestamp":"2024-05-01T11:59:%02d.123Z","properties":{"orderId":"ord_%d","revenue":%d.99,`+
		`"currency":"USD","items":%d,"coupon":null},`+
		`"context":{"library":{"name":"analytics-node","version":"6.2.0"}},`+
		`"integrations":{},"_metadata":{"nodeVersion":"20.11.0"}}`,
		i, i, i, i%60, i, 10+i%90, i%5)
}

func batchBody(n int) []byte {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = trackEvent(i)
	}
	return []byte(`{"batch":[` + strings.Join(msgs, ",") + `],"sentAt":"2024-05-01T12:00:00.000Z","writeKey":"wk_123"}`)
}

func TestBenchBodyShape(t *testing.T) {
	if n := len(trackEvent(1)); n < 380 || n > 420 {
		t.Fatalf("track event is %d bytes, want ~400", n)
	}
	req, err := Decode("batch", batchBody(100), recv(), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range req.Items {
		if it.Err != nil {
			t.Fatalf("item %d: %v", it.Index, it.Err)
		}
	}
}

// BenchmarkDecodeBatch decodes a 100-message batch of ~400-byte track
// events; ns/msg is the figure that matters for ingestion throughput.
func BenchmarkDecodeBatch(b *testing.B) {
	body, now, lim := batchBody(100), recv(), DefaultLimits()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := Decode("batch", body, now, lim)
		if err != nil || len(req.Items) != 100 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/msg")
}

// BenchmarkEncodingJSON is the baseline: the same body through
// encoding/json into generic maps (no validation at all).
func BenchmarkEncodingJSON(b *testing.B) {
	body := batchBody(100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			Batch []map[string]any `json:"batch"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/msg")
}

func BenchmarkDecodeSingle(b *testing.B) {
	body, now, lim := []byte(trackEvent(7)), recv(), DefaultLimits()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode("track", body, now, lim); err != nil {
			b.Fatal(err)
		}
	}
}
