// Package source owns Cohort's pull sources: Kafka topics (formats
// segment, maxwell, debezium) and MySQL/MariaDB row binlogs, configured in
// the config file's sources list.
//
// A source turns its input into message.Items and hands them to the one
// ingestion path, Ingester.SubmitWith, together with its position: the
// position is written in the same Pebble batch as the state the input up
// to it produced, so after any restart (even SIGKILL) the source resumes
// exactly after the last record whose effect is stored. Items it refuses
// go to the workspace's dead-letter log with their origin
// (kafka:<topic>:<partition>:<offset>, mysql:<file>:<pos>). Offsets are
// committed to the Kafka consumer group only after the store has them;
// the stored position wins when the two differ.
//
// Change streams (maxwell, debezium, binlog) become row changes that a
// per-table mapping turns into profile traits or track events (mapping.go).
// A mysql source also has a bootstrap lane (chunked primary-key scans,
// throttled, never overwriting a row the live lane changed since the
// bootstrap began) and derived traits (SQL against the source database).
//
// The Manager runs every source in its own goroutine with Fibonacci
// backoff on errors, a rate cap, pause and resume, and reports state,
// position and lag through Status (GET /api/sources) and Prometheus.
package source
