package segment

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cohortdb/cohort/internal/ingest"
)

type metrics struct {
	changes   *prometheus.CounterVec
	latency   prometheus.Observer
	lateness  prometheus.Observer
	build     prometheus.Observer
	query     prometheus.Observer
	throttled prometheus.Counter
	// checkpoint times index checkpoints (index.Checkpoint).
	checkpoint prometheus.Observer
	// merge times the merges of index bases (index.FinishMerge).
	merge prometheus.Observer
	// partMerges counts merged index parts installed.
	partMerges prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 16)
	m := &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cohort_membership_changes_total", Help: "Membership changes recorded, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cohort_accept_to_change_seconds", Help: "From a message's acceptance to the membership update of its commit.", Buckets: buckets,
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cohort_timer_lateness_seconds", Help: "How late time-driven re-evaluations fire after their due time.", Buckets: buckets,
		}),
		build: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cohort_segment_build_seconds", Help: "Time to build (or rebuild) a segment.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		query: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cohort_query_seconds", Help: "Time to evaluate a query with its criteria counts.", Buckets: buckets,
		}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cohort_index_checkpoint_seconds", Help: "Time to write an index checkpoint (its new parts and the event columns' checkpoint file), on the applier.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		merge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cohort_index_merge_seconds", Help: "Time to merge the profiles' side of the journal into a new index base file, in the background.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		partMerges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cohort_index_part_merges_total", Help: "Merged index parts installed: consecutive parts of an event name merged into one by a checkpoint's goroutine.",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cohort_bot_reevaluations_throttled_total", Help: "Re-evaluations of bot profiles deferred.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.changes, m.latency.(prometheus.Histogram), m.lateness.(prometheus.Histogram),
			m.build.(prometheus.Histogram), m.query.(prometheus.Histogram), m.throttled, m.checkpoint.(prometheus.Histogram), m.merge.(prometheus.Histogram), m.partMerges)
	}
	return m
}

func (m *metrics) observeLatency(c *ingest.Changes, now time.Time) {
	if !c.ReceivedAt.IsZero() {
		m.latency.Observe(now.Sub(c.ReceivedAt).Seconds())
	}
}
