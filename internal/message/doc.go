// Package message owns the decoding and validation of Segment tracking-spec
// messages as they arrive on the ingestion routes (/v1/batch, /v1/identify,
// /v1/track, /v1/alias, /v1/page, /v1/screen, /v1/group).
//
// It turns a request body into model.Message values and nothing more: it
// does no I/O beyond reading a gzip stream, knows nothing of HTTP, auth,
// storage or identity resolution. What it decides is:
//
//   - whether the request as a whole is acceptable (a JSON object of the
//     route's shape, within the body and per-message size limits); if not,
//     Decode returns an error wrapping ErrMalformed or ErrTooLarge and the
//     caller refuses the request with nothing stored;
//   - for each message, whether it is valid (ids present and of the right
//     type, the fields its call requires, objects where objects belong,
//     RFC 3339 timestamps, the per-message trait and property limits); an
//     invalid message is rejected alone, with a sentence naming the field;
//   - how a valid message is normalised: numeric ids become decimal
//     strings, batch-level "sentAt" and "context" fill in for messages
//     without their own, the event time is corrected for the client's clock
//     skew, and page, screen and group calls become the events $page,
//     $screen and $group.
//
// JSON is parsed by a small reflection-free parser that produces the same
// values as encoding/json unmarshalling into an any (numbers as float64),
// in one pass over the body.
package message
