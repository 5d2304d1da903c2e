// Package index owns the in-memory indexes of one workspace that segment
// evaluation runs on, kept current by the ingestion path's change feed.
//
// Profiles are named by their dense uint32 numbers and sets of profiles are
// roaring bitmaps. The index holds:
//
//   - all: every live root profile (the universe of "not" and "all");
//   - per trait, the distinct values with the bitmap of profiles holding
//     each, the bitmap of profiles that have the key at all, and a sorted
//     list of the distinct numeric values for range scans;
//   - per event name, a column store of its occurrences in arrival order:
//     profile number, timestamp, and one dictionary-encoded column per
//     property path, with per-block time bounds so windows skip blocks;
//     sealed parts (immutable, read from mapped files once checkpointed)
//     then a mutable head (part.go); each part file also holds the
//     profiles with an event on each day, and with each value of its
//     low-cardinality columns, which answer "did" and "did not" leaves
//     (days.go).
//
// A persisted index (Open, checkpoint.go) lives in its own directory:
// part files (consecutive parts merged into bigger ones by the
// checkpoints, partmerge.go), checkpoint files (the profiles' side in a
// base merged in the background, merge.go; the event columns in each
// checkpoint's, its files written in the background), and CURRENT
// naming them; the changes
// since are in the store's journal (journal.go), written in each commit's
// batch. Those files are a cache: the store's events and profiles are the
// truth, and the index is rebuilt from them when the files are missing,
// damaged or stale.
//
// An event scan counts qualifying events into dense per-profile arrays,
// partitioned by profile range when those outgrow the cache (accum.go),
// kept by the index between scans (scratches.go). The stretches of parts
// wholly inside a leaf's window are folded from partial aggregates kept
// per part, stretch and leaf (partial.go); the touched profiles are then
// decided against the count and aggregate (decide.go).
//
// Events stay under the profile number they were recorded with; merged
// numbers map to their root at evaluation time, and deleted numbers are
// skipped. An Index is safe for concurrent use: the change feed writes
// under its lock, evaluations read under it.
package index
