package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	accepted, duplicates, rejected prometheus.Counter
	queue                          prometheus.Gauge
	apply, sync                    prometheus.Observer
	groupSize                      prometheus.Observer
	bots                           prometheus.Counter
	overloaded                     prometheus.Counter
	queueAge                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cohort_ingest_messages_total",
		Help: "Messages handed to the ingestion path, by outcome.",
	}, []string{"outcome"})
	m := &metrics{
		accepted:   msgs.WithLabelValues("accepted"),
		duplicates: msgs.WithLabelValues("duplicate"),
		rejected:   msgs.WithLabelValues("rejected"),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cohort_ingest_queue_depth",
			Help: "Submissions waiting for the applier.",
		}),
	}
	apply := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cohort_ingest_apply_seconds",
		Help:    "Time to apply and commit one group of submissions.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	sync := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cohort_ingest_sync_seconds",
		Help:    "Time of one WAL sync (each acknowledges every group before it).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	group := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cohort_ingest_group_messages",
		Help:    "Messages per commit group.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	})
	m.apply, m.sync, m.groupSize = apply, sync, group
	m.bots = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cohort_bot_profiles_flagged_total", Help: "Profiles flagged as bots by their event rate.",
	})
	m.overloaded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cohort_ingest_overloaded_total", Help: "Submissions refused with 503 because the applier did not take them within limits.max_ingest_wait.",
	})
	m.queueAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cohort_ingest_queue_age_seconds", Help: "How long the oldest submission of the last commit group waited for the applier (alert on this, not on queue depth).",
	})
	if reg != nil {
		reg.MustRegister(msgs, m.queue, apply, sync, group, m.bots, m.overloaded, m.queueAge)
	}
	return m
}
