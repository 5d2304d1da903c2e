package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/store"
)

// kafkaSource consumes topics with a consumer group. Each polled
// partition's records become one or more submissions, the last carrying
// the partition's next offset; after the store has them the offsets are
// committed to the group. On (re)assignment the stored offsets override
// the group's, so a crash between the two changes nothing.
type kafkaSource struct {
	s     *src
	rows  *mapper // maxwell and debezium
	extra []kgo.Opt
	// idleAfter overrides idle (tests).
	idleAfter time.Duration
	posMu     sync.Mutex
	pos       map[string]int64 // "topic:partition" → next offset, as stored
	hwm       map[string]int64 // "topic:partition" → high watermark seen
	oldest    map[string]time.Time
}

func newKafka(s *src) (*kafkaSource, error) {
	k := &kafkaSource{s: s, pos: map[string]int64{}, hwm: map[string]int64{}, oldest: map[string]time.Time{}}
	if s.cfg.Format != "segment" {
		m, err := newMapper(s.cfg.Tables)
		if err != nil {
			return nil, err
		}
		k.rows = m
	}
	return k, nil
}

func part(topic string, partition int32) string { return topic + ":" + strconv.Itoa(int(partition)) }

func (k *kafkaSource) position() any {
	k.posMu.Lock()
	defer k.posMu.Unlock()
	out := make(map[string]int64, len(k.pos))
	for p, o := range k.pos {
		out[p] = o
	}
	return out
}

// loadPositions reads the stored offsets.
func (k *kafkaSource) loadPositions() error {
	k.posMu.Lock()
	defer k.posMu.Unlock()
	return store.ScanSourcePositions(k.s.mgr.st.DB(), k.s.ws.Num, k.s.cfg.Name, func(p string, v []byte) error {
		o, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("stored offset of %s is %q: %w", p, v, store.ErrCorruption)
		}
		k.pos[p] = o
		return nil
	})
}

func (k *kafkaSource) run(ctx context.Context) error {
	if err := k.loadPositions(); err != nil {
		return permanent{err}
	}
	group := k.s.cfg.Group
	if group == "" {
		group = "cohort-" + k.s.cfg.Name
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(k.s.cfg.Brokers...),
		kgo.ClientID("cohort-source-" + k.s.cfg.Name),
		kgo.ConsumerGroup(group),
		// Static membership: a restarted server (even after SIGKILL) takes
		// its old place in the group at once instead of waiting for the
		// dead member's session to time out.
		kgo.InstanceID(group + "-" + k.s.cfg.Name),
		kgo.ConsumeTopics(k.s.cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.RetryTimeout(5 * time.Second),
		kgo.AdjustFetchOffsetsFn(k.adjust),
	}, k.extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return permanent{fmt.Errorf("kafka client: %w", err)}
	}
	// Leaving the group needs the rebalance this source may be blocking.
	defer cl.CloseAllowingRebalance()
	for {
		pollCtx, cancel := context.WithTimeout(ctx, k.idle())
		fetches := cl.PollRecords(pollCtx, 5000)
		idle := pollCtx.Err() != nil && fetches.NumRecords() == 0
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if idle {
			// Nothing came: tell a quiet topic from an unreachable broker
			// (the client retries that silently), which is an error to
			// report and back off from.
			pingCtx, cancel := context.WithTimeout(ctx, k.idle())
			err := cl.Ping(pingCtx)
			cancel()
			if err != nil && ctx.Err() == nil {
				cl.AllowRebalance()
				return fmt.Errorf("no broker of %v answers: %w", k.s.cfg.Brokers, err)
			}
			cl.AllowRebalance()
			continue
		}
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("fetch %s: %w", part(t, p), err))
			}
		})
		if len(errs) > 0 {
			cl.AllowRebalance()
			return errors.Join(errs...)
		}
		var failed error
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if failed == nil && len(p.Records) > 0 {
				failed = k.apply(ctx, p)
			}
		})
		if failed != nil {
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil
			}
			return failed
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			// The store has the offsets; the group's copy only saves a
			// rebalanced consumer some redelivered records.
			k.s.log.Warn("committing offsets to the group failed", "err", err)
		}
		cl.AllowRebalance()
	}
}

// idle is how long a poll may bring nothing before the broker is pinged.
func (k *kafkaSource) idle() time.Duration {
	if k.idleAfter > 0 {
		return k.idleAfter
	}
	return 3 * time.Second
}

// adjust replaces the group's committed offsets by the stored ones.
func (k *kafkaSource) adjust(_ context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	k.posMu.Lock()
	defer k.posMu.Unlock()
	for t, ps := range offs {
		for p := range ps {
			if o, ok := k.pos[part(t, p)]; ok {
				ps[p] = kgo.NewOffset().At(o).WithEpoch(-1)
			}
		}
	}
	return offs, nil
}

// apply applies one partition's polled records in order.
func (k *kafkaSource) apply(ctx context.Context, p kgo.FetchTopicPartition) error {
	key := part(p.Topic, p.Partition)
	k.posMu.Lock()
	k.hwm[key] = p.HighWatermark
	k.oldest[key] = p.Records[0].Timestamp
	k.posMu.Unlock()
	lim := k.s.mgr.opts.Limits
	mlim := message.Limits{MaxMessageBytes: lim.MaxMessageBytes, MaxBatchBytes: lim.MaxBatchBytes, MaxProperties: lim.MaxProperties, MaxTraits: lim.MaxTraits}
	received := k.s.mgr.opts.Now().UTC()

	var items []message.Item
	n := 0
	// nextTS is the timestamp of the record after next: the oldest
	// unapplied one (the last polled one's when it is beyond the poll).
	flush := func(next int64, nextTS time.Time) error {
		if n == 0 {
			return nil
		}
		if err := k.s.wait(ctx, n); err != nil {
			return err
		}
		if _, err := k.s.submit(ctx, items, k.posWrite(key, next)); err != nil {
			return err
		}
		k.applied(key, n, next, nextTS)
		items, n = nil, 0
		return nil
	}
	tsAfter := func(i int) time.Time {
		if i+1 < len(p.Records) {
			return p.Records[i+1].Timestamp
		}
		return p.Records[i].Timestamp
	}
	for i, r := range p.Records {
		origin := fmt.Sprintf("kafka:%s:%d:%d", r.Topic, r.Partition, r.Offset)
		var c change
		if k.rows == nil {
			c = decodeSegment(r.Value, origin, received, mlim)
		} else {
			c = k.rows.kafkaRecord(k.s.cfg.Format, r, origin, received)
		}
		if c.erase != "" {
			if err := flush(r.Offset, r.Timestamp); err != nil {
				return err
			}
			if err := k.s.wait(ctx, 1); err != nil {
				return err
			}
			if _, err := k.s.mgr.in.DeleteUserWith(ctx, k.s.ws, c.erase, k.posWrite(key, r.Offset+1)); err != nil {
				return fmt.Errorf("ingest: %w", err)
			}
			k.applied(key, 1, r.Offset+1, tsAfter(i))
			continue
		}
		items = append(items, c.items...)
		n++
		if len(items) >= 2000 || i == len(p.Records)-1 {
			if err := flush(r.Offset+1, tsAfter(i)); err != nil {
				return err
			}
		}
	}
	last := len(p.Records) - 1
	return flush(p.Records[last].Offset+1, tsAfter(last))
}

func (k *kafkaSource) posWrite(key string, next int64) []ingest.Write {
	return []ingest.Write{{Key: store.SourcePosKey(k.s.ws.Num, k.s.cfg.Name, key), Value: []byte(strconv.FormatInt(next, 10))}}
}

// applied records a partition's new position and the source's lag.
func (k *kafkaSource) applied(key string, n int, next int64, nextTS time.Time) {
	k.posMu.Lock()
	k.pos[key] = next
	k.oldest[key] = nextTS
	var lag int64
	var oldest time.Time
	for p, h := range k.hwm {
		if d := h - k.pos[p]; d > 0 {
			lag += d
			if t := k.oldest[p]; !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		} else {
			k.oldest[p] = time.Time{}
		}
	}
	k.posMu.Unlock()
	k.s.applied(n, lag, oldest)
}
