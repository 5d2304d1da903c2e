package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/segment"
)

// kafkaTopic is what Kafka accepts as a topic name.
var kafkaTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validateKafka(c Config) error {
	if c.URL != "" || c.Secret != "" {
		return fmt.Errorf("url and secret are for webhook sinks: %w", ErrInvalid)
	}
	if len(c.Brokers) == 0 {
		return fmt.Errorf("brokers must list at least one host:port: %w", ErrInvalid)
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err == nil {
			var n uint64
			n, err = strconv.ParseUint(port, 10, 16)
			if err == nil && (host == "" || n == 0) {
				err = errors.New("empty host or port 0")
			}
		}
		if err != nil {
			return fmt.Errorf("broker %q must be host:port: %w", b, ErrInvalid)
		}
	}
	if !kafkaTopic.MatchString(c.Topic) || c.Topic == "." || c.Topic == ".." {
		return fmt.Errorf("topic %q must be 1 to 249 letters, digits, '.', '_' or '-': %w", c.Topic, ErrInvalid)
	}
	return nil
}

// kafkaDeliveryTimeout bounds one delivery to a Kafka topic, as the
// default HTTP client's timeout bounds a webhook's: a broker that cannot
// take the records fails the delivery, which the runner retries with its
// backoff (and reports in the sink's failures and last_error).
const kafkaDeliveryTimeout = 10 * time.Second

// kafka produces each change as one record to a topic, keyed by user id
// (so one user's changes share a partition and stay in order), the value
// the change's JSON, with a "seq" header. A page is acknowledged only
// when every one of its records was written by all in-sync replicas;
// the producer is idempotent, so the client's own retries add no
// duplicates, while a page the runner redelivers after a partial
// failure may (consumers drop records whose seq they have seen).
type kafka struct {
	cfg  Config
	opts []kgo.Opt

	once   sync.Once // close
	mu     sync.Mutex
	cl     *kgo.Client // made on the first delivery
	closed bool
}

func newKafka(c Config, extra []kgo.Opt, log *slog.Logger) *kafka {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.ClientID("cohort-sink"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Idempotent production is kgo's default: it is not disabled.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as Java clients
		kgo.RecordDeliveryTimeout(kafkaDeliveryTimeout),
		kgo.WithLogger(kgoLogger{log}),
	}
	return &kafka{cfg: c, opts: append(opts, extra...)}
}

func (k *kafka) client() (*kgo.Client, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errors.New("sink stopped")
	}
	if k.cl == nil {
		cl, err := kgo.NewClient(k.opts...)
		if err != nil {
			return nil, fmt.Errorf("kafka client: %w", err)
		}
		k.cl = cl
	}
	return k.cl, nil
}

// close closes the client; a second call waits for the first to finish.
func (k *kafka) close() {
	k.once.Do(func() {
		k.mu.Lock()
		cl := k.cl
		k.cl, k.closed = nil, true
		k.mu.Unlock()
		if cl != nil {
			cl.Close() // fails records still buffered or in flight
		}
	})
}

func (k *kafka) deliver(ctx context.Context, page []segment.Change) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(page))
	for i, c := range page {
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{
			Key:     []byte(c.User),
			Value:   v,
			Headers: []kgo.RecordHeader{{Key: "seq", Value: strconv.AppendUint(nil, c.Seq, 10)}},
		}
	}
	// Records of one partition are written in order and fail together
	// with every later one: a failed page leaves each partition with a
	// gapless prefix of it, and the runner resends the whole page.
	for _, res := range cl.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			return fmt.Errorf("kafka topic %s: change %s: %w", k.cfg.Topic, res.Record.Headers[0].Value, res.Err)
		}
	}
	return nil
}

// kgoLogger passes the Kafka client's warnings and errors to the sink's
// logger.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
	default:
		lv = slog.LevelInfo
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
