// Package store owns Cohort's durable state: one Pebble database, its key
// layout and the encodings of every record kept in it.
//
// Every key starts with a one-byte tag; keys that belong to a workspace
// continue with the workspace's 4-byte number, so one workspace's data is a
// contiguous key range and no read can stray into another's. Integers are
// big-endian so that keys sort numerically. docs/format.md lists every
// prefix and value encoding; FormatVersion is checked at open.
//
// Records read back go through one decoding function per record type that
// returns ErrCorruption rather than panicking on damaged input.
package store
