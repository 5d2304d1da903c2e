package source

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	records *prometheus.CounterVec
	errors  *prometheus.CounterVec
	state   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cohort_source_records_total",
			Help: "Records (rows) a source applied."}, []string{"source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cohort_source_errors_total",
			Help: "Errors that made a source back off."}, []string{"source"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cohort_source_state",
			Help: "1 for the state a source is in (running, paused, backoff, failed)."}, []string{"source", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.errors, m.state)
	}
	return m
}

func (m *metrics) setState(source, state string) {
	for _, s := range []string{StateRunning, StatePaused, StateBackoff, StateFailed} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(source, s).Set(v)
	}
}

// registerLag exports a source's lag, computed when /metrics is read.
func (m *metrics) registerLag(reg prometheus.Registerer, s *src) {
	if reg == nil {
		return
	}
	labels := prometheus.Labels{"source": s.cfg.Name}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cohort_source_lag_records", ConstLabels: labels,
			Help: "Records a source has not applied yet."}, func() float64 { return float64(s.status().LagRecords) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cohort_source_lag_seconds", ConstLabels: labels,
			Help: "Age of the oldest record a source has not applied yet."}, func() float64 { return s.status().LagSeconds }),
	)
}
