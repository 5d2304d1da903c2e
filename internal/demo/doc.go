// Package demo owns the demo workspace that `cohort gen` writes: a
// deterministic, realistic mix of e-commerce and media traffic as NDJSON
// Segment messages (identifies with typed traits including dates and
// locations, anonymous sessions that later identify, aliases, tracks and
// page calls with nested properties, a few type conflicts, bot-like users
// and a handful of deliberately bad lines) and a CSV file of profiles as a
// CRM export would have them.
//
// The profiles and events come from package gen (the benchmarks' generator);
// this package adds what a demo needs on top and the Segment JSON encoding.
// The same Config always yields the same bytes.
package demo
