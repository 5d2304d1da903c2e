package source

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cohortdb/cohort/internal/message"
)

// change is what one input record asks of the ingestion path: items to
// submit, or a user to erase (a deleted row of an "erase" table).
type change struct {
	items []message.Item
	erase string
}

// decodeSegment turns one segment-format record into items: the record is
// one Segment message or {"batch": [...]}, decoded and validated by the
// same code as POST /v1/batch. A message without messageId gets the
// record's origin (kafka:<topic>:<partition>:<offset>; in a batch, with
// ":<index>" appended), so a redelivered record is a duplicate. A record
// refused as a whole becomes one rejected item.
func decodeSegment(value []byte, origin string, received time.Time, lim message.Limits) change {
	req, batch, err := decodeSegmentBody(value, received, lim)
	if err != nil {
		return change{items: []message.Item{{Index: -1, Err: fmt.Errorf("record %s: %w", origin, err), Raw: value, Origin: origin}}}
	}
	for i := range req.Items {
		it := &req.Items[i]
		it.Origin = origin
		if it.MessageID != "" {
			continue
		}
		id := origin
		if batch {
			id += ":" + strconv.Itoa(it.Index)
		}
		it.MessageID = id
		if it.Msg != nil {
			it.Msg.MessageID = id
		}
	}
	return change{items: req.Items}
}

func decodeSegmentBody(value []byte, received time.Time, lim message.Limits) (req *message.Request, batch bool, err error) {
	if isBatch(value) {
		req, err := message.Decode("batch", value, received, lim)
		if err == nil || !errors.Is(err, message.ErrMalformed) {
			return req, true, err
		}
		// "batch" was something else (a property name): one message.
	}
	v := bytes.TrimSpace(value)
	if len(v) == 0 || v[0] != '{' {
		return nil, false, fmt.Errorf("the value is not a JSON object (want one Segment message or {\"batch\": [...]}): %w", message.ErrMalformed)
	}
	wrapped := make([]byte, 0, len(v)+12)
	wrapped = append(append(append(wrapped, `{"batch":[`...), v...), "]}"...)
	req, err = message.Decode("batch", wrapped, received, lim)
	return req, false, err
}

// isBatch tells whether a record may be a {"batch": [...]} envelope.
func isBatch(v []byte) bool { return bytes.Contains(v, []byte(`"batch"`)) }
