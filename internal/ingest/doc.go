// Package ingest owns the one path by which data enters Cohort. Every
// source — HTTP, file import, and later Kafka and binlogs — hands it
// decoded messages; it deduplicates them, resolves identities, enforces
// the workspace limits, updates the schema registry and writes profiles,
// events and dead-letter entries to the store.
//
// A single applier goroutine applies submissions in the order they arrive,
// many per Pebble batch (group commit), so that identity resolution and
// last-writer-wins traits see one total order. Each group's batch commits
// on a goroutine of its own while the OnApply listener (the indexes and
// segment membership) applies the group's changes and writes what follows
// from them to a second batch, committed right after. A syncer goroutine syncs
// the WAL: a submission is acknowledged only once the sync that follows its
// commit has returned, and one sync acknowledges every commit before it.
package ingest
