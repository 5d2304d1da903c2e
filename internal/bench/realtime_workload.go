package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
)

// The workload of `cohort-bench realtime`: the segments it defines, the
// messages it loads before the run, and the request bodies of the run.

// RTSegment is one live segment of the benchmark.
type RTSegment struct {
	ID        string
	Kind      string // what it exercises (the report counts them)
	Condition string // JSON
}

// rtSlot is a timer segment: profiles enter it with one "Heartbeat" event
// carrying {"slot": N} (or, for the trait slot, an identify setting
// hb_at) and leave it (reason "time") when that event or trait turns
// Window old.
type rtSlot struct {
	seg    RTSegment
	num    int           // the slot property value
	window time.Duration // relative window of its condition
	trait  bool          // hb_at within_last Window instead of an event
	// short slots take the timers due during the run; long ones the
	// timers that stay pending (due hours or days after it).
	short bool
}

const rtHeartbeat = "Heartbeat"

// rtWindowName renders a duration as the condition language writes it.
func rtWindowName(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}

// rtShortWindow returns the first of the usual short windows, starting at
// the i-th, that is at least need.
func rtShortWindow(i int, need time.Duration) time.Duration {
	ws := []time.Duration{90 * time.Second, 10 * time.Minute, 30 * time.Minute, 2 * time.Hour}
	w := ws[i%len(ws)]
	for _, c := range []time.Duration{90 * time.Second, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		if w >= need {
			break
		}
		w = max(w, c)
	}
	return w
}

// rtTimerSlots defines nShort timer segments whose timers fall due during
// the run and nLong whose timers stay pending (due hours or days after
// it). need is the shortest window a short slot may have: the time from
// the first due-in-run heartbeat to the end of the run.
func rtTimerSlots(nShort, nLong int, need time.Duration) []rtSlot {
	k := nShort + nLong
	longs := []time.Duration{7 * 24 * time.Hour, 30 * 24 * time.Hour, 14 * 24 * time.Hour, 24 * time.Hour}
	var out []rtSlot
	for j := range k {
		s := rtSlot{num: j}
		where := fmt.Sprintf(`"where":[{"property":"slot","op":"eq","value":%d}]`, j)
		id := fmt.Sprintf("rt-timer-%02d", j)
		if j < nShort {
			s.short = true
			s.window = rtShortWindow(j, need)
			w := rtWindowName(s.window)
			var c string
			switch j % 5 {
			case 0:
				c = fmt.Sprintf(`{"event":%q,%s,"within":{"last":%q}}`, rtHeartbeat, where, w)
			case 1:
				c = fmt.Sprintf(`{"and":[{"event":%q,%s,"count":{"op":"gte","value":1},"within":{"last":%q}},{"trait":"plan","op":"exists"}]}`, rtHeartbeat, where, w)
			case 2:
				c = fmt.Sprintf(`{"event":%q,%s,"aggregate":{"fn":"sum","property":"v","op":"gte","value":1},"within":{"last":%q}}`, rtHeartbeat, where, w)
			case 3:
				s.trait = true
				c = fmt.Sprintf(`{"trait":"hb_at","op":"within_last","value":%q}`, w)
			default:
				c = fmt.Sprintf(`{"or":[{"event":%q,%s,"within":{"last":%q}},{"trait":"no_such_trait","op":"eq","value":1}]}`, rtHeartbeat, where, w)
			}
			s.seg = RTSegment{ID: id, Kind: "timer: due during the run (" + w + ")", Condition: c}
		} else {
			s.window = longs[j%len(longs)]
			w := rtWindowName(s.window)
			var c string
			switch j % 3 {
			case 0:
				c = fmt.Sprintf(`{"event":%q,%s,"within":{"last":%q}}`, rtHeartbeat, where, w)
			case 1:
				c = fmt.Sprintf(`{"not":{"event":%q,%s,"within":{"last":%q}}}`, rtHeartbeat, where, w)
			default:
				c = fmt.Sprintf(`{"event":%q,%s,"count":{"op":"gte","value":2},"within":{"last":%q}}`, rtHeartbeat, where, w)
			}
			s.seg = RTSegment{ID: id, Kind: "timer: pending after the run (" + w + ")", Condition: c}
		}
		out = append(out, s)
	}
	return out
}

// rtMixedSegments returns n segments of mixed kinds over the generator's
// vocabulary; later ones may refer to earlier ones.
func rtMixedSegments(seed uint64, n int) []RTSegment {
	r := rand.New(rand.NewPCG(seed, 0x7265616c74696d65))
	c := &rtCondGen{r: r}
	out := make([]RTSegment, 0, n)
	for i := range n {
		id := fmt.Sprintf("rt-seg-%03d", i)
		var kind, cond string
		switch i % 9 {
		case 0:
			kind, cond = "trait", c.trait()
		case 1:
			kind, cond = "event count with where", c.event(c.where(), c.count(), "", "")
		case 2:
			kind, cond = "relative window, within last", c.event(c.maybeWhere(), "", "", c.pick("30m", "12h", "1d", "7d", "7d", "30d"))
		case 3:
			kind, cond = "not did X in window", `{"not":`+c.event(c.maybeWhere(), "", "", c.pick("7d", "30d", "30d"))+`}`
		case 4:
			kind, cond = "aggregate", c.aggregate()
		case 5:
			kind, cond = "and/or", c.combo()
		case 6:
			kind, cond = "not of and/or", `{"not":`+c.combo()+`}`
		case 7:
			kind, cond = "event count, fixed date range", c.event(c.maybeWhere(), c.count(), "", "range")
		default:
			if i == 8 || len(out) < 2 {
				kind, cond = "trait", c.trait()
				break
			}
			kind = "segment reference"
			a := out[r.IntN(len(out))].ID
			b := out[r.IntN(len(out))].ID
			switch r.IntN(3) {
			case 0:
				cond = fmt.Sprintf(`{"and":[{"segment":%q},%s]}`, a, c.trait())
			case 1:
				cond = fmt.Sprintf(`{"or":[{"segment":%q},{"not":{"segment":%q}}]}`, a, b)
			default:
				cond = fmt.Sprintf(`{"and":[{"segment":%q},%s]}`, a, c.event("", "", "", c.pick("1d", "7d")))
			}
		}
		out = append(out, RTSegment{ID: id, Kind: kind, Condition: cond})
	}
	return out
}

type rtCondGen struct{ r *rand.Rand }

func (c *rtCondGen) pick(xs ...string) string { return xs[c.r.IntN(len(xs))] }

func rtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (c *rtCondGen) trait() string {
	switch c.r.IntN(10) {
	case 0:
		return `{"trait":"plan","op":"eq","value":` + rtJSON(c.pick(gen.Plans...)) + `}`
	case 1:
		return `{"trait":"city","op":"in","value":[` + rtJSON(c.pick(gen.Cities...)) + `,` + rtJSON(c.pick(gen.Cities...)) + `],"ignore_case":true}`
	case 2:
		lo := 18 + c.r.IntN(40)
		return fmt.Sprintf(`{"trait":"age","op":"between","value":[%d,%d]}`, lo, lo+5+c.r.IntN(20))
	case 3:
		return fmt.Sprintf(`{"trait":"ltv","op":%q,"value":%d}`, c.pick("gt", "lt", "gte"), c.r.IntN(1000))
	case 4:
		return `{"trait":"tags","op":"contains","value":` + rtJSON(c.pick(gen.Genres...)) + `}`
	case 5:
		return `{"trait":"signed_up_at","op":` + rtJSON(c.pick("within_last", "not_within_last")) + `,"value":` + rtJSON(c.pick("7d", "30d", "2w")) + `}`
	case 6:
		return `{"trait":"address.city","op":"eq","value":` + rtJSON(c.pick(gen.Cities...)) + `,"ignore_case":true}`
	case 7:
		return `{"trait":"vip","op":"eq","value":true}`
	case 8:
		return `{"trait":"city","op":"starts_with","value":` + rtJSON(c.pick("L", "Pa", "S", "B")) + `}`
	}
	return `{"trait":"location","op":"near","value":{"lat":51.5,"lon":-0.1,"radius_km":` + strconv.Itoa(20+c.r.IntN(80)) + `}}`
}

// eventName picks an event name (uniformly, so that segments spread over
// the names; the traffic itself is Zipf-skewed).
func (c *rtCondGen) eventName() string { return c.pick(gen.EventNames...) }

// where returns a where-clause for an event name (chosen here) as
// `"event":NAME,"where":[...]`.
func (c *rtCondGen) where() string {
	switch c.r.IntN(5) {
	case 0, 1:
		name := c.pick("Added To Cart", "Product Viewed", "Order Completed", "Checkout Started", "Removed From Cart")
		p := `{"property":"product_category","op":"eq","value":` + rtJSON(c.pick(gen.Categories...)) + `}`
		if c.r.IntN(2) == 0 {
			p += fmt.Sprintf(`,{"property":"price","op":"gt","value":%d}`, c.r.IntN(300))
		}
		return `"event":` + rtJSON(name) + `,"where":[` + p + `]`
	case 2:
		return `"event":"Song Played","where":[{"property":"genre","op":"in","value":[` + rtJSON(c.pick(gen.Genres...)) + `,` + rtJSON(c.pick(gen.Genres...)) + `]}]`
	case 3:
		return `"event":"Page Viewed","where":[{"property":"referrer","op":"eq","value":` + rtJSON(c.pick("google", "direct", "newsletter")) + `}]`
	}
	return `"event":"Search","where":[{"property":"query","op":"starts_with","value":` + rtJSON(c.pick(gen.Categories...)) + `}]`
}

func (c *rtCondGen) maybeWhere() string {
	if c.r.IntN(2) == 0 {
		return c.where()
	}
	return `"event":` + rtJSON(c.eventName())
}

func (c *rtCondGen) count() string {
	op := c.pick("gte", "gte", "gt", "lt", "between", "eq")
	if op == "between" {
		lo := 1 + c.r.IntN(3)
		return fmt.Sprintf(`"count":{"op":"between","value":[%d,%d]}`, lo, lo+1+c.r.IntN(5))
	}
	return fmt.Sprintf(`"count":{"op":%q,"value":%d}`, op, 1+c.r.IntN(4))
}

// event builds an event leaf: head is `"event":...` (with its where) or
// "" for a plain random name; window is a "last" duration, "range", or "".
func (c *rtCondGen) event(head, count, agg, window string) string {
	if head == "" {
		head = `"event":` + rtJSON(c.eventName())
	}
	parts := []string{head}
	if count != "" {
		parts = append(parts, count)
	}
	if agg != "" {
		parts = append(parts, agg)
	}
	switch window {
	case "":
	case "range":
		parts = append(parts, `"within":{"from":`+rtJSON(time.Now().UTC().Add(-20*24*time.Hour).Truncate(24*time.Hour).Format(time.RFC3339))+
			`,"to":`+rtJSON(time.Now().UTC().Add(-5*24*time.Hour).Truncate(24*time.Hour).Format(time.RFC3339))+`}`)
	default:
		parts = append(parts, `"within":{"last":`+rtJSON(window)+`}`)
	}
	return `{` + strings.Join(parts, ",") + `}`
}

func (c *rtCondGen) aggregate() string {
	switch c.r.IntN(4) {
	case 0:
		return c.event(`"event":"Order Completed"`, "", fmt.Sprintf(`"aggregate":{"fn":"sum","property":"price","op":"gt","value":%d}`, 100+c.r.IntN(400)), c.pick("", "30d", "7d"))
	case 1:
		return c.event(`"event":"Song Played"`, "", fmt.Sprintf(`"aggregate":{"fn":"avg","property":"duration","op":"gt","value":%d}`, 100+c.r.IntN(200)), c.pick("", "30d"))
	case 2:
		return c.event(`"event":`+rtJSON(c.pick("Added To Cart", "Product Viewed")), "", fmt.Sprintf(`"aggregate":{"fn":"distinct","property":"product_category","op":"gte","value":%d}`, 2+c.r.IntN(2)), c.pick("", "30d", "7d"))
	}
	return c.event(`"event":"Added To Cart"`, `"count":{"op":"gte","value":1}`, fmt.Sprintf(`"aggregate":{"fn":"max","property":"price","op":"gte","value":%d}`, 200+c.r.IntN(250)), c.pick("", "1d", "7d"))
}

func (c *rtCondGen) leaf() string {
	switch c.r.IntN(4) {
	case 0:
		return c.trait()
	case 1:
		return c.event(c.where(), c.pick("", `"count":{"op":"gte","value":2}`), "", c.pick("", "7d", "30d"))
	case 2:
		return c.event("", "", "", c.pick("1d", "7d", "30d"))
	}
	return c.event(c.maybeWhere(), c.count(), "", "")
}

func (c *rtCondGen) combo() string {
	op := c.pick("and", "or")
	n := 2 + c.r.IntN(2)
	parts := make([]string, n)
	for i := range parts {
		if i == n-1 && c.r.IntN(3) == 0 {
			parts[i] = `{"not":` + c.leaf() + `}`
			continue
		}
		parts[i] = c.leaf()
	}
	return `{"` + op + `":[` + strings.Join(parts, ",") + `]}`
}

// rtIdentifyBodies encodes one identify per profile (the generator's traits,
// every profile identified by its userId), per batches of batch.
func rtIdentifyBodies(seed uint64, profiles, batch int, now time.Time, runID string) [][]byte {
	g := gen.New(gen.Config{Seed: seed, Profiles: profiles, Now: now, Days: 30})
	var out [][]byte
	var msgs []json.RawMessage
	for i, m := range g.Identifies() {
		b, _ := json.Marshal(map[string]any{
			"type": "identify", "userId": gen.UserID(i), "traits": m.Traits,
			"messageId": fmt.Sprintf("rt-%s-id-%d", runID, i),
		})
		msgs = append(msgs, b)
		if len(msgs) == batch {
			out = append(out, rtBatchBody(msgs))
			msgs = msgs[:0]
		}
	}
	if len(msgs) > 0 {
		out = append(out, rtBatchBody(msgs))
	}
	return out
}

func rtBatchBody(msgs []json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// rtTrackJSON encodes a generated track message; ts zero leaves the
// timestamp to the server (the time it receives the message).
func rtTrackJSON(m *model.Message, messageID string, ts time.Time) []byte {
	o := map[string]any{"type": "track", "userId": m.UserID, "event": m.Event, "properties": m.Properties, "messageId": messageID}
	if !ts.IsZero() {
		o["timestamp"] = ts.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(o)
	return b
}

// rtHistoryBodies encodes n generated track events with timestamps over
// the 30 days before now. With uniform, every event's user is drawn
// uniformly instead of the generator's half-Zipf mix.
func rtHistoryBodies(seed uint64, profiles, n, batch int, now time.Time, runID string, uniform bool) [][]byte {
	g := gen.New(gen.Config{Seed: seed ^ 0x686973, Profiles: profiles, Events: n, Now: now, Days: 30})
	ur := rand.New(rand.NewPCG(seed, 0x756e69))
	var out [][]byte
	var msgs []json.RawMessage
	i := 0
	for m := g.Next(); m != nil; m = g.Next() {
		if m.Type != model.Track {
			continue
		}
		if uniform {
			m.UserID = gen.UserID(ur.IntN(profiles))
		}
		msgs = append(msgs, rtTrackJSON(m, fmt.Sprintf("rt-%s-h-%d", runID, i), m.Timestamp))
		i++
		if len(msgs) == batch {
			out = append(out, rtBatchBody(msgs))
			msgs = msgs[:0]
		}
	}
	if len(msgs) > 0 {
		out = append(out, rtBatchBody(msgs))
	}
	return out
}

// rtTemplate is one request body of the run: its messages' ids end in
// seqDigits hex digits written just before sending, so every message of
// the run has its own messageId.
type rtTemplate struct {
	body   []byte
	seqOff []int
	users  []string // the userId of each message
	events int      // track messages (the rest are identifies)
}

const rtSeqDigits = 16

// rtRunTemplates pre-generates n request bodies of batch messages: track
// events drawn like the generator's (Zipf-skewed users and names, no
// timestamp: the server stamps them when it receives them), with one
// identify in twenty changing a trait. With uniform, users are drawn
// uniformly.
func rtRunTemplates(seed uint64, profiles, batch, n int, runID string, uniform bool) []rtTemplate {
	g := gen.New(gen.Config{Seed: seed ^ 0x72756e, Profiles: profiles, Events: n * batch, Days: 30})
	r := rand.New(rand.NewPCG(seed, 0x6964))
	prefix := "rt-" + runID + "-r-"
	ph := prefix + strings.Repeat("0", rtSeqDigits)
	out := make([]rtTemplate, n)
	for k := range out {
		t := rtTemplate{}
		var b bytes.Buffer
		b.WriteString(`{"batch":[`)
		for i := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			m := g.Next()
			for m != nil && m.Type != model.Track {
				m = g.Next()
			}
			if m == nil {
				break
			}
			if uniform {
				m.UserID = gen.UserID(r.IntN(profiles))
			}
			var enc []byte
			if r.IntN(20) == 0 {
				traits := map[string]any{}
				switch r.IntN(4) {
				case 0:
					traits["plan"] = gen.Plans[r.IntN(len(gen.Plans))]
				case 1:
					traits["ltv"] = float64(r.IntN(100000)) / 100
				case 2:
					traits["city"] = gen.Cities[r.IntN(len(gen.Cities))]
				default:
					traits["vip"] = r.IntN(2) == 0
				}
				enc, _ = json.Marshal(map[string]any{"type": "identify", "userId": m.UserID, "traits": traits, "messageId": ph})
			} else {
				enc = rtTrackJSON(m, ph, time.Time{})
				t.events++
			}
			at := bytes.Index(enc, []byte(`"messageId":"`+prefix))
			t.seqOff = append(t.seqOff, b.Len()+at+len(`"messageId":"`)+len(prefix))
			t.users = append(t.users, m.UserID)
			b.Write(enc)
		}
		b.WriteString(`]}`)
		t.body = b.Bytes()
		out[k] = t
	}
	return out
}

// fill copies the template into buf with the messages' sequence numbers
// first, first+1, …
func (t *rtTemplate) fill(buf []byte, first uint64) []byte {
	buf = append(buf[:0], t.body...)
	for i, off := range t.seqOff {
		v := first + uint64(i)
		for j := off + rtSeqDigits - 1; j >= off; j-- {
			buf[j] = "0123456789abcdef"[v&15]
			v >>= 4
		}
	}
	return buf
}

// rtPair is one planned timer: a profile's heartbeat for a slot, due at
// due (its event or trait timestamp is due − window).
type rtPair struct {
	profile int
	slot    int // index into the slots
	due     time.Time
}

// rtHeartbeatJSON encodes the message that gives a pair its timer.
func rtHeartbeatJSON(p rtPair, s rtSlot, messageID string) []byte {
	ts := p.due.Add(-s.window).UTC()
	if s.trait {
		b, _ := json.Marshal(map[string]any{"type": "identify", "userId": gen.UserID(p.profile),
			"traits": map[string]any{"hb_at": ts.Format(time.RFC3339Nano)}, "messageId": messageID})
		return b
	}
	b, _ := json.Marshal(map[string]any{"type": "track", "userId": gen.UserID(p.profile), "event": rtHeartbeat,
		"properties": map[string]any{"slot": s.num, "v": 1}, "timestamp": ts.Format(time.RFC3339Nano), "messageId": messageID})
	return b
}
