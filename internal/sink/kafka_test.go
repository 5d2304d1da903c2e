package sink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/server"
	"github.com/cohortdb/cohort/internal/sink"
)

const topic = "cohort-changes"

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.SeedTopics(4, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func openServer(t *testing.T, dir string, so sink.Options) (*server.Server, *ingest.Workspace) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = dir
	cfg.WriteKey, cfg.APIKey, cfg.AdminKey = "write-key-1", "api-key-123", "admin-key-1"
	srv, err := server.Open(cfg, server.Options{Sink: so})
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := srv.In.WorkspaceByName("default")
	return srv, ws
}

// identify sets trait i of users u<from>..u<to-1> (each its number, or
// value when not negative).
func identify(t *testing.T, srv *server.Server, ws *ingest.Workspace, from, to, value int) {
	t.Helper()
	for i := from; i < to; i++ {
		v := i
		if value >= 0 {
			v = value
		}
		body := fmt.Sprintf(`{"batch":[{"type":"identify","userId":"u%02d","traits":{"i":%d}}]}`, i, v)
		req, err := message.Decode("batch", []byte(body), time.Now(), message.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.In.Submit(context.Background(), ws, "test", req.Items); err != nil {
			t.Fatal(err)
		}
	}
}

// waitCursor waits until the sink has acknowledged every change up to seq.
func waitCursor(t *testing.T, srv *server.Server, ws *ingest.Workspace, id string, seq uint64) *sink.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := srv.Sinks.Get(ws, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Cursor >= seq {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink cursor %d, want %d (failures %d, last error %q)", st.Cursor, seq, st.Failures, st.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// record is one record read back from the topic.
type record struct {
	partition int32
	offset    int64
	key       string
	seq       uint64 // of the header
	change    segment.Change
}

// consume reads the whole topic: until every seq 1..want was seen and
// then nothing more arrives for a while.
func consume(t *testing.T, c *kfake.Cluster, want uint64) []record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []record
	seen := map[uint64]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		wait := time.Until(deadline)
		if uint64(len(seen)) >= want {
			wait = 500 * time.Millisecond // drain what is left
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch: %v", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			n++
			rec := record{partition: r.Partition, offset: r.Offset, key: string(r.Key)}
			if len(r.Headers) != 1 || r.Headers[0].Key != "seq" {
				t.Fatalf("record headers %v, want one seq", r.Headers)
			}
			if rec.seq, err = strconv.ParseUint(string(r.Headers[0].Value), 10, 64); err != nil {
				t.Fatalf("seq header %q: %v", r.Headers[0].Value, err)
			}
			if err := json.Unmarshal(r.Value, &rec.change); err != nil {
				t.Fatalf("record value %s: %v", r.Value, err)
			}
			seen[rec.seq] = true
			out = append(out, rec)
		})
		if n == 0 && uint64(len(seen)) >= want {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d seqs from the topic", len(seen), want)
		}
	}
}

// checkRecords checks what a topic holds against the change stream:
// every record is keyed by its change's user and carries its seq; a
// user's records share one partition; and a receiver dropping, per
// partition, each record whose seq is not above the last it kept (the
// duplicates of a redelivery) keeps exactly the changes 1..want.
// It returns how many records were duplicates.
func checkRecords(t *testing.T, recs []record, want []segment.Change) int {
	t.Helper()
	partOf := map[string]int32{}
	last := map[int32]uint64{}
	var kept []segment.Change
	dups := 0
	for _, r := range recs {
		if r.key != r.change.User || r.seq != r.change.Seq {
			t.Fatalf("record key %q seq %d, its change %+v", r.key, r.seq, r.change)
		}
		if p, ok := partOf[r.key]; ok && p != r.partition {
			t.Fatalf("user %s in partitions %d and %d", r.key, p, r.partition)
		}
		partOf[r.key] = r.partition
		if r.seq <= last[r.partition] {
			dups++
			continue
		}
		last[r.partition] = r.seq
		kept = append(kept, r.change)
	}
	slices.SortFunc(kept, func(a, b segment.Change) int { return int(a.Seq) - int(b.Seq) })
	if len(kept) != len(want) {
		t.Fatalf("%d distinct changes on the topic, want %d", len(kept), len(want))
	}
	for i := range want {
		if !kept[i].At.Equal(want[i].At) {
			t.Fatalf("change %d at %v, want %v", i, kept[i].At, want[i].At)
		}
		kept[i].At = want[i].At
		if kept[i] != want[i] {
			t.Fatalf("change %+v on the topic, want %+v (a gap in its partition)", kept[i], want[i])
		}
	}
	return dups
}

func changes(t *testing.T, srv *server.Server, ws *ingest.Workspace, upTo uint64) []segment.Change {
	t.Helper()
	cs, _, err := segment.ReadChanges(srv.St.DB(), ws.Num, 0, upTo, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(cs)) != upTo {
		t.Fatalf("%d changes up to seq %d", len(cs), upTo)
	}
	return cs
}

func TestKafkaValidation(t *testing.T) {
	srv, ws := openServer(t, t.TempDir(), sink.Options{})
	defer srv.Close()
	ctx := context.Background()
	for _, c := range []sink.Config{
		{ID: "k", Type: "kafka", Topic: topic},
		{ID: "k", Type: "kafka", Brokers: []string{"localhost"}, Topic: topic},
		{ID: "k", Type: "kafka", Brokers: []string{":9092"}, Topic: topic},
		{ID: "k", Type: "kafka", Brokers: []string{"localhost:0"}, Topic: topic},
		{ID: "k", Type: "kafka", Brokers: []string{"localhost:x"}, Topic: topic},
		{ID: "k", Type: "kafka", Brokers: []string{"localhost:9092"}},
		{ID: "k", Type: "kafka", Brokers: []string{"localhost:9092"}, Topic: "a b"},
		{ID: "k", Type: "kafka", Brokers: []string{"localhost:9092"}, Topic: topic, URL: "http://x"},
		{ID: "k", Type: "webhook", URL: "http://x", Topic: topic},
		{ID: "k", Type: "kinesis"},
	} {
		if _, err := srv.Sinks.Create(ctx, ws, c, nil); !errors.Is(err, sink.ErrInvalid) {
			t.Errorf("%+v: %v, want invalid", c, err)
		}
	}
	st, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "k", Type: "kafka", Brokers: []string{"localhost:9092", "[::1]:9093"}, Topic: topic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	var got map[string]any
	json.Unmarshal(b, &got)
	if _, ok := got["url"]; ok || got["topic"] != topic || len(got["brokers"].([]any)) != 2 {
		t.Errorf("status %s", b)
	}
}

// TestKafkaDelivery: every change reaches the topic once, keyed by user,
// in seq order per partition.
func TestKafkaDelivery(t *testing.T) {
	c := newCluster(t)
	srv, ws := openServer(t, t.TempDir(), sink.Options{})
	defer srv.Close()
	ctx := context.Background()
	for id, cond := range map[string]string{"everyone": `{"all":true}`, "small": `{"trait":"i","op":"lt","value":15}`} {
		if _, err := srv.Seg.Create(ctx, ws, id, id, json.RawMessage(cond)); err != nil {
			t.Fatal(err)
		}
	}
	from := uint64(0)
	if _, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "k", Type: "kafka", Brokers: c.ListenAddrs(), Topic: topic, Batch: 7}, &from); err != nil {
		t.Fatal(err)
	}
	identify(t, srv, ws, 0, 30, -1)  // 30 enter everyone, 15 enter small
	identify(t, srv, ws, 0, 10, 100) // 10 exit small
	const n = 55
	st := waitCursor(t, srv, ws, "k", n)
	if st.Failures != 0 || st.Type != "kafka" {
		t.Errorf("status %+v", st)
	}
	want := changes(t, srv, ws, n)
	srv.Sinks.Close()
	recs := consume(t, c, n)
	if dups := checkRecords(t, recs, want); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].partition == recs[i-1].partition && recs[i].seq <= recs[i-1].seq {
			t.Fatalf("partition %d out of order: seq %d after %d", recs[i].partition, recs[i].seq, recs[i-1].seq)
		}
	}
}

// refuse makes the cluster answer the next n produce requests with
// NOT_ENOUGH_REPLICAS (what acks=all meets when replicas are missing);
// it returns how many were refused so far.
func refuse(c *kfake.Cluster, n int64) *atomic.Int64 {
	var refused atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Load() >= n {
			c.DropControl()
			return nil, nil, false
		}
		refused.Add(1)
		c.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewProduceResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewProduceResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = kerr.NotEnoughReplicas.Code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil, true
	})
	return &refused
}

// TestKafkaBackoff: the broker refuses produce for a while; the sink
// backs off exactly as for webhooks, then delivers every change, in
// order per partition (duplicates of a retried page allowed, no gaps).
func TestKafkaBackoff(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	const refusals = 5
	refused := refuse(c, refusals)
	var smu sync.Mutex
	var slept []time.Duration
	srv, ws := openServer(t, t.TempDir(), sink.Options{
		Base:  time.Second,
		Cap:   5 * time.Second,
		Kafka: []kgo.Opt{kgo.RecordRetries(0)}, // a refused request fails the delivery at once
		Sleep: func(ctx context.Context, d time.Duration) error {
			if d > 0 {
				smu.Lock()
				slept = append(slept, d)
				smu.Unlock()
			}
			return ctx.Err()
		},
	})
	defer srv.Close()
	ctx := context.Background()
	if _, err := srv.Seg.Create(ctx, ws, "everyone", "everyone", json.RawMessage(`{"all":true}`)); err != nil {
		t.Fatal(err)
	}
	identify(t, srv, ws, 0, 40, -1)
	from := uint64(0)
	if _, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "k", Type: "kafka", Brokers: c.ListenAddrs(), Topic: topic, Batch: 4}, &from); err != nil {
		t.Fatal(err)
	}
	const n = 40
	waitCursor(t, srv, ws, "k", n)
	want := changes(t, srv, ws, n)
	srv.Sinks.Close()
	if got := refused.Load(); got != refusals {
		t.Fatalf("%d produce requests refused, want %d", got, refusals)
	}
	checkRecords(t, consume(t, c, n), want)

	// One produce request per delivery: five failures grow the delay in
	// Fibonacci steps to the cap (1 1 2 3 5 s), then each success steps
	// it back down.
	smu.Lock()
	defer smu.Unlock()
	var secs []string
	for _, d := range slept {
		secs = append(secs, fmt.Sprint(d.Seconds()))
	}
	if got, want := fmt.Sprint(secs), "[1 1 2 3 5 3 2 1 1]"; got != want {
		t.Errorf("delays %s, want %s", got, want)
	}
}

// TestKafkaRestart: a sink stopped while its broker refuses, then
// started again from its stored cursor, delivers what it had not
// acknowledged and everything after, without gaps.
func TestKafkaRestart(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	so := sink.Options{Base: time.Millisecond, Cap: 10 * time.Millisecond, Kafka: []kgo.Opt{kgo.RecordRetries(0)}}
	srv, ws := openServer(t, dir, so)
	ctx := context.Background()
	if _, err := srv.Seg.Create(ctx, ws, "everyone", "everyone", json.RawMessage(`{"all":true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "k", Type: "kafka", Brokers: c.ListenAddrs(), Topic: topic, Batch: 3}, nil); err != nil {
		t.Fatal(err)
	}
	identify(t, srv, ws, 0, 10, -1)
	waitCursor(t, srv, ws, "k", 10)

	refused := refuse(c, 1<<62) // from now on, until dropped
	identify(t, srv, ws, 10, 20, -1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := srv.Sinks.Get(ws, "k")
		if err != nil {
			t.Fatal(err)
		}
		if st.Failures >= 3 {
			if st.Cursor != 10 || st.LastError == "" {
				t.Fatalf("status %+v after failures", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failures: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Close(); err != nil { // stops the sink amid its retries
		t.Fatal(err)
	}
	refused.Store(1 << 62) // the control drops itself at the next request

	srv, ws = openServer(t, dir, so)
	defer srv.Close()
	st, err := srv.Sinks.Get(ws, "k")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cursor != 10 {
		t.Fatalf("restarted at cursor %d, want 10", st.Cursor)
	}
	identify(t, srv, ws, 20, 30, -1)
	const n = 30
	waitCursor(t, srv, ws, "k", n)
	want := changes(t, srv, ws, n)
	srv.Sinks.Close()
	recs := consume(t, c, n)
	checkRecords(t, recs, want)
	// Nothing acknowledged before the stop was sent again.
	count := map[uint64]int{}
	for _, r := range recs {
		count[r.seq]++
	}
	for s := uint64(1); s <= 10; s++ {
		if count[s] != 1 {
			t.Errorf("seq %d on the topic %d times", s, count[s])
		}
	}
}

// TestKafkaStopWhileHung: a sink whose broker never answers a produce
// request stops promptly (its client is closed, failing the request).
func TestKafkaStopWhileHung(t *testing.T) {
	c := newCluster(t)
	var hung atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		hung.Add(1)
		return nil, nil, true // no answer
	})
	srv, ws := openServer(t, t.TempDir(), sink.Options{})
	defer srv.Close()
	ctx := context.Background()
	if _, err := srv.Seg.Create(ctx, ws, "everyone", "everyone", json.RawMessage(`{"all":true}`)); err != nil {
		t.Fatal(err)
	}
	from := uint64(0)
	if _, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "k", Type: "kafka", Brokers: c.ListenAddrs(), Topic: topic}, &from); err != nil {
		t.Fatal(err)
	}
	identify(t, srv, ws, 0, 5, -1)
	for deadline := time.Now().Add(30 * time.Second); hung.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no produce request")
		}
	}
	start := time.Now()
	if err := srv.Sinks.Delete(ctx, ws, "k"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping took %v", d)
	}
}
