package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cohortdb/cohort/internal/buildinfo"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/server"
	"github.com/cohortdb/cohort/internal/store"
)

// importSink is where imported messages go: a running server over HTTP or
// a data directory opened in-process. Both run every message through the
// same decoder and ingestion path.
type importSink interface {
	// limits are the per-message and per-body byte limits batches keep to.
	limits() (maxMsg, maxBody int)
	// send delivers one batch: every entry is accounted for in the result,
	// as accepted, duplicate or rejected. An error means the destination
	// failed and the import must stop.
	send(ctx context.Context, batch []entry) (sendResult, error)
	close() error
	describe() string
	// deadLettersLocal tells whether entries rejected while reading reach
	// the dead-letter log too.
	deadLettersLocal() bool
	retries() int
	setNotifier(func(string))
}

// sendResult is what became of one batch.
type sendResult struct {
	accepted   int
	duplicates int
	rejected   []batchRejection
}

// batchRejection is one rejected entry of a batch, by its index there.
type batchRejection struct {
	index  int
	reason string
}

// batchBody builds a POST /v1/batch body from message JSON.
func batchBody(raws [][]byte) []byte {
	n := len(`{"batch":[]}`) + len(raws)
	for _, r := range raws {
		n += len(r)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"batch":[`...)
	for i, r := range raws {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, "]}"...)
}

// dataSink imports straight into a data directory, through the same
// decoder (message.Decode of a /v1/batch body) and ingestion path
// (Ingester.Submit) as the HTTP API.
type dataSink struct {
	srv  *server.Server
	ws   *ingest.Workspace
	lim  message.Limits
	now  func() time.Time
	desc string
}

func openDataSink(c importConfig, stdout, stderr io.Writer) (*dataSink, error) {
	conf := config.Default()
	if c.cfgPath != "" {
		var err error
		if conf, err = config.Load(c.cfgPath); err != nil {
			return nil, err
		}
	}
	conf.Data = c.data
	conf.ApplyEnv(os.Getenv)
	exists, err := store.InDir(c.data)
	if err != nil {
		return nil, err
	}
	if !exists {
		if !c.create {
			return nil, fmt.Errorf("--data %s is not a Cohort data directory (give --create to make a new one there)", c.data)
		}
		fmt.Fprintf(stderr, "cohort import: creating a new data directory in %s\n", c.data)
	}
	// Keys generated for a new data directory are printed once, on stdout.
	srv, err := server.Open(conf, server.Options{Out: stdout, Now: c.now})
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock") {
			hint = " (is a server running on it? then import through it with --server)"
		}
		return nil, fmt.Errorf("open data directory %s: %w%s", c.data, err, hint)
	}
	ws, ok := srv.In.WorkspaceByName(c.workspace)
	if !ok {
		srv.Close()
		return nil, fmt.Errorf("workspace %q does not exist in %s", c.workspace, c.data)
	}
	return &dataSink{
		srv: srv,
		ws:  ws,
		lim: message.Limits{
			MaxMessageBytes: conf.Limits.MaxMessageBytes,
			MaxBatchBytes:   conf.Limits.MaxBatchBytes,
			MaxProperties:   conf.Limits.MaxProperties,
			MaxTraits:       conf.Limits.MaxTraits,
		},
		now:  c.now,
		desc: fmt.Sprintf("data directory %s, workspace %q", c.data, c.workspace),
	}, nil
}

func (d *dataSink) limits() (int, int) {
	return d.lim.MaxMessageBytes, d.lim.MaxBatchBytes
}

func (d *dataSink) send(ctx context.Context, batch []entry) (sendResult, error) {
	var raws [][]byte
	for _, e := range batch {
		if e.reject == "" {
			raws = append(raws, e.raw)
		}
	}
	decoded, err := d.decode(raws, d.now().UTC())
	if err != nil {
		return sendResult{}, err
	}
	// One submission in file order: entries rejected while reading go to
	// the dead-letter log with the rest. Every rejection says where the
	// message came from.
	items := make([]message.Item, len(batch))
	reasons := make([]string, len(batch))
	k := 0
	for i, e := range batch {
		var it message.Item
		if e.reject != "" {
			msg := e.reject
			if e.detail != "" {
				msg += ": " + e.detail
			}
			it = message.Item{Err: errors.New(msg), Raw: e.raw}
			reasons[i] = e.reject
		} else {
			it = decoded[k]
			k++
			if it.Err != nil {
				reasons[i] = it.Err.Error()
			}
		}
		it.Index = i
		if it.Err != nil {
			it.Err = fmt.Errorf("%s: %w", e.loc, it.Err)
		}
		items[i] = it
	}
	res, err := d.srv.In.Submit(ctx, d.ws, "import", items)
	if err != nil {
		return sendResult{}, fmt.Errorf("store: %w", err)
	}
	out := sendResult{accepted: res.Accepted, duplicates: res.Duplicates}
	for _, r := range res.Rejected {
		if r.Index < 0 || r.Index >= len(batch) {
			return sendResult{}, fmt.Errorf("store: rejection of message %d in a batch of %d", r.Index, len(batch))
		}
		reason := reasons[r.Index]
		if reason == "" {
			reason = r.Error // a workspace limit, found when applying
		}
		out.rejected = append(out.rejected, batchRejection{r.Index, reason})
	}
	return out, nil
}

// decode decodes message JSON as one /v1/batch body. Should the body be
// refused as a whole (which well-formed lines within the limits never
// are), it is split until the refused messages stand alone, and each of
// those is rejected with the refusal.
func (d *dataSink) decode(raws [][]byte, now time.Time) ([]message.Item, error) {
	if len(raws) == 0 {
		return nil, nil
	}
	req, err := message.Decode("batch", batchBody(raws), now, d.lim)
	if err == nil {
		if len(req.Items) != len(raws) {
			return nil, fmt.Errorf("decoder returned %d messages for %d", len(req.Items), len(raws))
		}
		return req.Items, nil
	}
	if len(raws) == 1 {
		return []message.Item{{Err: err, Raw: raws[0]}}, nil
	}
	mid := len(raws) / 2
	a, err := d.decode(raws[:mid], now)
	if err != nil {
		return nil, err
	}
	b, err := d.decode(raws[mid:], now)
	if err != nil {
		return nil, err
	}
	return append(a, b...), nil
}

func (d *dataSink) close() error {
	if err := d.srv.Close(); err != nil {
		return fmt.Errorf("close data directory: %w", err)
	}
	return nil
}

func (d *dataSink) describe() string         { return d.desc }
func (d *dataSink) deadLettersLocal() bool   { return true }
func (d *dataSink) retries() int             { return 0 }
func (d *dataSink) setNotifier(func(string)) {}

// httpSink posts batches to a running server's /v1/batch, gzip-compressed,
// authenticated with the write key, retrying what a retry can fix.
type httpSink struct {
	url         string
	key         string
	client      *http.Client
	maxAttempts int
	backoffMin  time.Duration // the first wait before a retry
	backoffMax  time.Duration // the longest (Retry-After may ask for more)
	now         func() time.Time
	notify      func(string)
	nretries    int
	desc        string
}

// maxRetryAfter bounds how long a server's Retry-After can make us wait.
const maxRetryAfter = 10 * time.Minute

func newHTTPSink(c importConfig) *httpSink {
	client := c.client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	return &httpSink{
		url:         strings.TrimRight(c.server, "/") + "/v1/batch",
		key:         c.writeKey,
		client:      client,
		maxAttempts: max(c.maxAttempts, 1),
		backoffMin:  c.retryBase,
		backoffMax:  c.retryMax,
		now:         c.now,
		notify:      func(string) {},
		desc:        "server " + c.server,
	}
}

// limits are the contract's: the server's may be larger, never smaller.
func (h *httpSink) limits() (int, int) {
	l := message.DefaultLimits()
	return l.MaxMessageBytes, l.MaxBatchBytes
}

func (h *httpSink) send(ctx context.Context, batch []entry) (sendResult, error) {
	res := sendResult{}
	var goods []int
	for i, e := range batch {
		if e.reject != "" {
			res.rejected = append(res.rejected, batchRejection{i, e.reject})
		} else {
			goods = append(goods, i)
		}
	}
	if err := h.post(ctx, batch, goods, &res); err != nil {
		return sendResult{}, err
	}
	slices.SortFunc(res.rejected, func(a, b batchRejection) int { return a.index - b.index })
	return res, nil
}

// batchAnswer is the body of a 200 answer to POST /v1/batch.
type batchAnswer struct {
	Success  bool `json:"success"`
	Rejected []struct {
		Index     int    `json:"index"`
		MessageID string `json:"messageId"`
		Error     string `json:"error"`
	} `json:"rejected"`
	// Duplicates is how many messages the server had stored already and
	// skipped; Cohort sends it only when there are some.
	Duplicates *int `json:"duplicates"`
}

// post sends the entries of batch at the indexes goods as one request.
func (h *httpSink) post(ctx context.Context, batch []entry, goods []int, res *sendResult) error {
	if len(goods) == 0 {
		return nil
	}
	raws := make([][]byte, len(goods))
	for i, g := range goods {
		raws[i] = batch[g].raw
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(batchBody(raws))
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress batch: %w", err)
	}
	status, body, err := h.do(ctx, buf.Bytes())
	if err != nil {
		return err
	}
	switch {
	case status >= 200 && status < 300:
		var a batchAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			return fmt.Errorf("unreadable answer from %s (HTTP %d): %v", h.url, status, err)
		}
		for _, r := range a.Rejected {
			if r.Index < 0 || r.Index >= len(goods) {
				return fmt.Errorf("answer from %s rejects message %d of a batch of %d", h.url, r.Index, len(goods))
			}
			res.rejected = append(res.rejected, batchRejection{goods[r.Index], r.Error})
		}
		accepted := len(goods) - len(a.Rejected)
		if a.Duplicates != nil { // absent: none
			res.duplicates += *a.Duplicates
			accepted -= *a.Duplicates
		}
		res.accepted += accepted
		return nil
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		// The request was refused as a whole (the server's limits may be
		// smaller than the contract's): split it until the refused
		// messages stand alone.
		if len(goods) > 1 {
			mid := len(goods) / 2
			if err := h.post(ctx, batch, goods[:mid], res); err != nil {
				return err
			}
			return h.post(ctx, batch, goods[mid:], res)
		}
		res.rejected = append(res.rejected, batchRejection{goods[0], "refused by the server: " + answerError(body)})
		return nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("the server refused the write key (HTTP %d): %s", status, answerError(body))
	}
	return fmt.Errorf("unexpected answer from %s: HTTP %d: %s", h.url, status, answerError(body))
}

// do POSTs a gzip body, retrying connection errors, 429 and 5xx with
// exponential backoff, or after the server's Retry-After when it gives
// one. Messages carry their messageIds, so a retry of a request that was
// in fact stored only finds duplicates.
func (h *httpSink) do(ctx context.Context, body []byte) (int, []byte, error) {
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("User-Agent", "cohort-import/"+buildinfo.Version)
		req.SetBasicAuth(h.key, "")

		var wait time.Duration
		var waitGiven bool
		var failure error
		resp, err := h.client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = fmt.Errorf("read answer from %s: %w", h.url, rerr)
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				wait, waitGiven = retryAfter(resp.Header.Get("Retry-After"), h.now())
				failure = fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, h.url, answerError(b))
			default:
				return resp.StatusCode, b, nil
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, ctx.Err()
			}
			failure = err
		}
		if attempt >= h.maxAttempts {
			return 0, nil, fmt.Errorf("gave up after %d attempts: %w", attempt, failure)
		}
		if !waitGiven {
			wait = h.backoff(attempt)
		}
		wait = min(wait, maxRetryAfter)
		h.nretries++
		h.notify(fmt.Sprintf("%v; retrying in %s (attempt %d of %d)", failure, wait.Round(time.Millisecond), attempt+1, h.maxAttempts))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is the wait before retry number attempt: doubling from the base
// up to the maximum, the upper half of it randomised.
func (h *httpSink) backoff(attempt int) time.Duration {
	d := h.backoffMin
	for i := 1; i < attempt && d < h.backoffMax; i++ {
		d *= 2
	}
	d = min(d, h.backoffMax)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// answerError is the "error" of a JSON error answer, else its text.
func answerError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		s = "(empty answer)"
	}
	return s
}

func (h *httpSink) close() error               { h.client.CloseIdleConnections(); return nil }
func (h *httpSink) describe() string           { return h.desc }
func (h *httpSink) deadLettersLocal() bool     { return false }
func (h *httpSink) retries() int               { return h.nretries }
func (h *httpSink) setNotifier(f func(string)) { h.notify = f }
