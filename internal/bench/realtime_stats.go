package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RTProm is one scrape of Prometheus text: series (name with its
// labels, as written) → value.
type RTProm map[string]float64

// RTParseProm reads Prometheus text exposition format.
func RTParseProm(r io.Reader) (RTProm, error) {
	m := RTProm{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

func rtScrape(ctx context.Context, client *http.Client, url string) (RTProm, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return RTParseProm(resp.Body)
}

// RTHist is a Prometheus histogram's increase between two scrapes.
type RTHist struct {
	Bounds []float64 // upper bounds, ascending, +Inf last
	Cum    []float64 // cumulative counts per bound
	Count  float64
	Sum    float64
}

// RTHistDiff is the increase of histogram name from a to b.
func RTHistDiff(a, b RTProm, name string) RTHist {
	var h RTHist
	prefix := name + `_bucket{le="`
	type bk struct{ le, n float64 }
	var bks []bk
	for k, v := range b {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le := strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`)
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = math.Inf(1), nil
		}
		if err != nil {
			continue
		}
		bks = append(bks, bk{f, v - a[k]})
	}
	sort.Slice(bks, func(i, j int) bool { return bks[i].le < bks[j].le })
	for _, x := range bks {
		h.Bounds = append(h.Bounds, x.le)
		h.Cum = append(h.Cum, x.n)
	}
	h.Count = b[name+"_count"] - a[name+"_count"]
	h.Sum = b[name+"_sum"] - a[name+"_sum"]
	return h
}

// Quantile interpolates quantile q linearly within its bucket (0 is the
// lower bound of the first). It is +Inf when the quantile falls in the
// last, unbounded bucket, NaN with no observation.
func (h RTHist) Quantile(q float64) float64 {
	if len(h.Cum) == 0 || h.Cum[len(h.Cum)-1] == 0 {
		return math.NaN()
	}
	total := h.Cum[len(h.Cum)-1]
	rank := q * total
	lo, prev := 0.0, 0.0
	for i, c := range h.Cum {
		if c >= rank && c > prev {
			hi := h.Bounds[i]
			if math.IsInf(hi, 1) {
				return hi
			}
			return lo + (hi-lo)*(rank-prev)/(c-prev)
		}
		lo, prev = h.Bounds[i], c
	}
	return h.Bounds[len(h.Bounds)-1]
}

// MaxBound is the upper bound of the highest non-empty bucket: the
// maximum is at most that.
func (h RTHist) MaxBound() float64 {
	prev := 0.0
	out := math.NaN()
	for i, c := range h.Cum {
		if c > prev {
			out = h.Bounds[i]
		}
		prev = c
	}
	return out
}

// Within is the fraction of observations at most bound (bound must be a
// bucket bound to be exact).
func (h RTHist) Within(bound float64) float64 {
	if len(h.Cum) == 0 || h.Cum[len(h.Cum)-1] == 0 {
		return math.NaN()
	}
	for i, b := range h.Bounds {
		if b >= bound {
			return h.Cum[i] / h.Cum[len(h.Cum)-1]
		}
	}
	return 1
}

// RTDist summarises measured durations.
type RTDist struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

func rtDistOf(xs []time.Duration) RTDist {
	slices.Sort(xs)
	return RTDist{N: len(xs), P50: rtPct(xs, 50), P90: rtPct(xs, 90), P99: rtPct(xs, 99), P999: rtPct(xs, 99.9), Max: rtPct(xs, 100)}
}

// rtPct is the nearest-rank percentile of sorted xs.
func rtPct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted))-1e-9)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// rtChange is one change as the stream delivered it.
type rtChange struct {
	recv    int64 // when the client read it (UnixNano)
	at      int64 // the change's "at"
	seq     uint64
	segment string
	user    string
	enter   bool
	reason  string
}

// rtReadSSE reads GET /api/changes as Server-Sent Events until ctx is done
// or the stream ends, calling fn for every change.
func rtReadSSE(ctx context.Context, client *http.Client, url, apiKey string, ready chan<- error, fn func(rtChange)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		ready <- err
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		ready <- err
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: %s", url, resp.Status)
		ready <- err
		return err
	}
	ready <- nil
	br := bufio.NewReaderSize(resp.Body, 256<<10)
	p := &rtChangeParser{strs: map[string]string{}}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		c, err := p.parse(bytes.TrimSpace(data))
		if err != nil {
			return fmt.Errorf("change stream: %v in %q", err, data)
		}
		c.recv = time.Now().UnixNano()
		fn(c)
	}
}

// rtChangeParser decodes the stream's change objects. The reader runs in
// the benchmark's process, on the same two cores as the server, so it
// avoids reflection: the fields are found by name, strings without
// escapes are interned (segments and users repeat), and the RFC 3339 UTC
// time is read digit by digit. Anything unusual goes to encoding/json.
type rtChangeParser struct {
	strs map[string]string
}

func (p *rtChangeParser) intern(b []byte) string {
	if s, ok := p.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	p.strs[s] = s
	return s
}

// field returns the raw value after "name": (a string's contents without
// its quotes).
func rtField(data []byte, name string) ([]byte, bool) {
	i := bytes.Index(data, []byte(`"`+name+`":`))
	if i < 0 {
		return nil, false
	}
	v := data[i+len(name)+3:]
	if len(v) > 0 && v[0] == '"' {
		end := bytes.IndexByte(v[1:], '"')
		if end < 0 {
			return nil, false
		}
		return v[1 : 1+end], true
	}
	end := bytes.IndexAny(v, ",}")
	if end < 0 {
		return nil, false
	}
	return v[:end], true
}

func (p *rtChangeParser) parse(data []byte) (rtChange, error) {
	if bytes.IndexByte(data, '\\') >= 0 {
		return p.slow(data)
	}
	var c rtChange
	seq, ok1 := rtField(data, "seq")
	seg, ok2 := rtField(data, "segment")
	user, ok3 := rtField(data, "user")
	ch, ok4 := rtField(data, "change")
	at, ok5 := rtField(data, "at")
	reason, ok6 := rtField(data, "reason")
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return p.slow(data)
	}
	n, err := strconv.ParseUint(string(seq), 10, 64)
	if err != nil {
		return p.slow(data)
	}
	t, ok := rtParseUTC(at)
	if !ok {
		return p.slow(data)
	}
	c.seq, c.segment, c.user, c.enter, c.reason, c.at = n, p.intern(seg), p.intern(user), string(ch) == "enter", p.intern(reason), t
	return c, nil
}

func (p *rtChangeParser) slow(data []byte) (rtChange, error) {
	var c struct {
		Seq     uint64    `json:"seq"`
		Segment string    `json:"segment"`
		User    string    `json:"user"`
		Change  string    `json:"change"`
		At      time.Time `json:"at"`
		Reason  string    `json:"reason"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return rtChange{}, err
	}
	return rtChange{at: c.At.UnixNano(), seq: c.Seq, segment: c.Segment, user: c.User, enter: c.Change == "enter", reason: c.Reason}, nil
}

// rtParseUTC reads "2006-01-02T15:04:05[.fraction]Z" as Unix nanoseconds.
func rtParseUTC(b []byte) (int64, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	ns := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) > 10 {
			return 0, false
		}
		f, ok := num(frac[1:])
		if !ok {
			return 0, false
		}
		for range 10 - len(frac) {
			f *= 10
		}
		ns = f
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC).UnixNano(), true
}
