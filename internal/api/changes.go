package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
)

// changes serves GET /api/changes: membership changes with seq > since,
// as Server-Sent Events (resuming from Last-Event-ID), or with
// Accept: application/json as one page {"changes": [...], "next": SEQ}.
// Only durable changes are served.
func (s *Server) changes(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	q := r.URL.Query()
	var since uint64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "since=%q: want a change seq (0 for the start)", v)
		}
		since = n
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "Last-Event-ID %q: want a change seq", v)
		}
		since = n
	}
	segFilter := q.Get("segment")
	limit, err := intParam(r, "limit", 1000, 1, 10000)
	if err != nil {
		return err
	}
	if wantsJSON(r) {
		durable, _ := s.seg.Durable(ws.Num)
		page, next, err := s.readChanges(r.Context(), ws.Num, since, durable, segFilter, limit)
		if err != nil {
			return err
		}
		// "last" (the latest durable seq) lets a client start a live view
		// from now (the console's change feed).
		out := map[string]any{"changes": page, "next": next, "last": durable}
		compacted, err := s.seg.Compacted(ws.Num)
		if err != nil {
			return err
		}
		if since < compacted {
			// The page reads history that keeps only the latest change
			// of each (segment, user).
			out["compacted"] = true
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return errorf(http.StatusInternalServerError, "streaming is not supported by this connection")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 1000\n\n")
	flusher.Flush()
	ctx := r.Context()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		durable, more := s.seg.Durable(ws.Num)
		for since < durable {
			page, next, err := s.readChanges(r.Context(), ws.Num, since, durable, segFilter, limit)
			if err != nil {
				return nil // the stream has started; the client reconnects
			}
			for _, c := range page {
				b, _ := json.Marshal(c)
				fmt.Fprintf(w, "id: %d\nevent: change\ndata: %s\n\n", c.Seq, b)
			}
			since = next
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-more:
		case <-keepalive.C:
			fmt.Fprintf(w, ": keepalive\n\n")
			flusher.Flush()
		}
	}
}

func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/event-stream")
}

// changeScanChunk is how many seqs readChanges scans between looks at the
// request's context: a filter on a rare segment may scan the whole log.
const changeScanChunk = 16384

// readChanges reads a page of durable changes (see segment.ReadChanges),
// a chunk of the log at a time, stopping when the request is cancelled.
func (s *Server) readChanges(ctx context.Context, ws uint32, since, upTo uint64, filter string, limit int) ([]segment.Change, uint64, error) {
	var f func(string) bool
	if filter != "" {
		f = func(id string) bool { return id == filter }
	}
	out := []segment.Change{}
	for since < upTo {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		to := upTo
		if upTo-since > changeScanChunk {
			to = since + changeScanChunk
		}
		page, next, err := segment.ReadChanges(s.st.DB(), ws, since, to, f, limit-len(out))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, page...)
		since = next
		if len(out) >= limit {
			break
		}
	}
	return out, since, nil
}
