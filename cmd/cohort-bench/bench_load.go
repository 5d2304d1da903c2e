package main

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The workload of `cohort-bench ingest`: request bodies generated before the
// run, so that client-side JSON encoding takes no CPU during measurement.
//
// A run sends far more messages than it is worth holding in memory, and
// every message must have its own messageId (a repeated id is acknowledged
// and skipped by the server, which would make the run cheaper than real
// traffic). So the bodies are templates: each message's messageId ends in
// 16 hex digits that a client overwrites in place with a run-wide sequence
// number just before sending (a 40 KB copy and 100 small writes, no
// encoding).

// benchEventNames returns the 50 event names, most frequent first.
func benchEventNames() []string {
	return []string{
		"Product Viewed", "Application Opened", "Products Searched", "Product List Viewed",
		"Product Added", "Cart Viewed", "Feature Used", "Signed In", "Checkout Started",
		"Promotion Viewed", "Product Clicked", "Email Opened", "Order Completed",
		"Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered",
		"Product Removed", "Product List Filtered", "Promotion Clicked", "Email Link Clicked",
		"Push Notification Received", "Push Notification Tapped", "Video Playback Started",
		"Video Content Playing", "Video Playback Completed", "Coupon Applied", "Coupon Denied",
		"Wishlist Product Added", "Wishlist Product Removed", "Product Shared", "Product Reviewed",
		"Signed Up", "Signed Out", "Account Created", "Password Reset", "Trial Started",
		"Trial Ended", "Subscription Started", "Subscription Cancelled", "Plan Upgraded",
		"Plan Downgraded", "Invoice Paid", "Report Exported", "File Uploaded", "Invite Sent",
		"Invite Accepted", "Order Updated", "Order Refunded", "Order Cancelled", "Account Deleted",
	}
}

// seqDigits is the width of the per-message sequence number in messageIds.
const seqDigits = 16

// workloadSpec says what to generate.
type workloadSpec struct {
	Batch      int    // messages per request
	EventBytes int    // approximate JSON size of one message
	Users      int    // size of the userId pool (Zipf-skewed)
	Seed       uint64 // content seed; the same seed gives the same bodies
	RunID      string // part of every messageId, so runs never collide
	Now        time.Time
	// MaxBytes bounds the memory the templates take (default 64 MiB).
	MaxBytes int
}

// bodyTemplate is one request body and where its messages' sequence
// numbers go.
type bodyTemplate struct {
	body   []byte
	seqOff []int // offset of each message's seqDigits hex digits
}

// workload is every template of a run.
type workload struct {
	templates  []bodyTemplate
	batch      int
	meanBody   float64 // bytes per request body
	meanEvent  float64 // bytes per message, as encoded in the batch
	maxBody    int
	distinct   int // distinct message contents (before sequence numbers)
	generation time.Duration
	// The user skew as generated: the hottest user's share of the
	// messages, and the share of the hottest 1% of the users.
	hotUser, top1pct float64
}

// benchMessage is a track call as a server-side SDK sends it.
type benchMessage struct {
	Type       string         `json:"type"`
	MessageID  string         `json:"messageId"`
	UserID     string         `json:"userId"`
	Event      string         `json:"event"`
	Properties map[string]any `json:"properties"`
	Context    map[string]any `json:"context"`
	Timestamp  string         `json:"timestamp"`
	SentAt     string         `json:"sentAt"`
}

const benchTimeLayout = "2006-01-02T15:04:05.000Z"

// newWorkload generates the templates.
func newWorkload(spec workloadSpec) (*workload, error) {
	if spec.Batch < 1 || spec.EventBytes < 1 || spec.Users < 1 {
		return nil, fmt.Errorf("workload: batch, event size and users must be positive")
	}
	if spec.MaxBytes == 0 {
		spec.MaxBytes = 64 << 20
	}
	start := time.Now()
	n := spec.MaxBytes / (spec.Batch*spec.EventBytes + 64)
	n = max(8, min(n, 1024))
	r := rand.New(rand.NewPCG(spec.Seed, 0x636f686f7274))
	names := benchEventNames()
	// P(user k) ∝ (300+k)^-1.1: over 100k users the hottest sends 0.08% of
	// the messages, the top 1% of the users 31%, the bottom half 9% (a few
	// power users, a long tail). A plain Zipf (v=1) would give one user 13%
	// and the top 1% 75%: one bot, not an audience.
	users := rand.NewZipf(r, 1.1, 300, uint64(spec.Users-1))
	gen := &eventGen{
		r:          r,
		users:      users,
		events:     rand.NewZipf(r, 1.2, 1, uint64(len(names)-1)),
		spec:       spec,
		idPre:      "bench-" + spec.RunID + "-",
		names:      names,
		categories: []string{"electronics", "books", "home", "garden", "toys", "sports", "beauty", "grocery"},
		plans:      []string{"free", "starter", "pro", "business", "enterprise"},
		libraries:  []string{"analytics-node", "analytics-python", "analytics-go", "analytics-ruby"},
		perUser:    map[uint64]int{},
	}
	w := &workload{templates: make([]bodyTemplate, n), batch: spec.Batch, distinct: n * spec.Batch}
	var total, events int
	for i := range w.templates {
		t, err := gen.body()
		if err != nil {
			return nil, err
		}
		w.templates[i] = t
		total += len(t.body)
		events += len(t.body) - len(`{"batch":[]}`) - (spec.Batch - 1) // without the commas
		w.maxBody = max(w.maxBody, len(t.body))
	}
	counts := slices.Sorted(maps.Values(gen.perUser))
	slices.Reverse(counts)
	top := 0
	for _, c := range counts[:min(len(counts), max(1, spec.Users/100))] {
		top += c
	}
	w.hotUser = float64(counts[0]) / float64(w.distinct)
	w.top1pct = float64(top) / float64(w.distinct)
	w.meanBody = float64(total) / float64(n)
	w.meanEvent = float64(events) / float64(n*spec.Batch)
	w.generation = time.Since(start)
	return w, nil
}

// fill copies template k into buf and writes the sequence numbers
// first, first+1, ... into its messageIds.
func (w *workload) fill(buf []byte, k uint64, first uint64) []byte {
	t := &w.templates[k%uint64(len(w.templates))]
	buf = append(buf[:0], t.body...)
	for i, off := range t.seqOff {
		putHex(buf[off:off+seqDigits], first+uint64(i))
	}
	return buf
}

const hexDigits = "0123456789abcdef"

func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&15]
		v >>= 4
	}
}

type eventGen struct {
	r      *rand.Rand
	users  *rand.Zipf
	events *rand.Zipf
	spec   workloadSpec
	idPre  string

	names, categories, plans, libraries []string
	perUser                             map[uint64]int
}

func (g *eventGen) body() (bodyTemplate, error) {
	placeholder := strings.Repeat("0", seqDigits)
	t := bodyTemplate{seqOff: make([]int, 0, g.spec.Batch)}
	b := append(make([]byte, 0, g.spec.Batch*(g.spec.EventBytes+16)+16), `{"batch":[`...)
	sentAt := g.spec.Now.UTC()
	for i := range g.spec.Batch {
		if i > 0 {
			b = append(b, ',')
		}
		m := g.message(sentAt, g.idPre+placeholder)
		enc, err := json.Marshal(m)
		if err != nil {
			return t, fmt.Errorf("workload: %w", err)
		}
		if pad := g.spec.EventBytes - len(enc) - len(`,"description":""`); pad > 0 {
			m.Properties["description"] = g.words(pad)
			if enc, err = json.Marshal(m); err != nil {
				return t, fmt.Errorf("workload: %w", err)
			}
		}
		// messageId is the second field: its digits follow the prefix.
		at := strings.Index(string(enc), `"messageId":"`+g.idPre)
		if at < 0 {
			return t, fmt.Errorf("workload: messageId not found in %s", enc)
		}
		t.seqOff = append(t.seqOff, len(b)+at+len(`"messageId":"`)+len(g.idPre))
		b = append(b, enc...)
	}
	t.body = append(b, `]}`...)
	return t, nil
}

// words returns n bytes of lowercase words.
func (g *eventGen) words(n int) string {
	const vocab = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua"
	ws := strings.Fields(vocab)
	var sb strings.Builder
	for sb.Len() < n {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(ws[g.r.IntN(len(ws))])
	}
	return sb.String()[:n]
}

// The kinds of properties an event carries.
const (
	shapeCommerce = iota
	shapeSearch
	shapeEngagement
	shapeUsage
)

// eventShape says which properties an event name carries.
func eventShape(name string) int {
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(name, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("Searched", "Filtered"):
		return shapeSearch
	case has("Product", "Order", "Cart", "Checkout", "Coupon", "Payment", "Promotion"):
		return shapeCommerce
	case has("Viewed", "Opened", "Clicked", "Video", "Push", "Tapped"):
		return shapeEngagement
	}
	return shapeUsage
}

func (g *eventGen) message(sentAt time.Time, messageID string) benchMessage {
	r := g.r
	name := g.events.Uint64()
	user := g.users.Uint64()
	g.perUser[user]++
	props := map[string]any{}
	switch eventShape(g.names[name]) {
	case shapeCommerce:
		props["product_id"] = fmt.Sprintf("prod_%05d", r.IntN(20000))
		props["price"] = float64(r.IntN(50000))/100 + 0.99
		props["quantity"] = 1 + r.IntN(5)
		props["in_stock"] = r.IntN(10) > 0
		props["category"] = g.categories[r.IntN(len(g.categories))]
		props["coupon"] = nil
	case shapeSearch:
		props["query"] = g.categories[r.IntN(len(g.categories))] + " " + g.plans[r.IntN(len(g.plans))]
		props["results"] = r.IntN(500)
		props["filters"] = []string{"price_asc", "in_stock"}[:r.IntN(3)]
		props["page"] = 1 + r.IntN(10)
		props["personalized"] = r.IntN(2) == 0
	case shapeEngagement:
		props["path"] = fmt.Sprintf("/p/%s/%d", g.categories[r.IntN(len(g.categories))], r.IntN(1000))
		props["referrer"] = "https://www.google.com/"
		props["duration_ms"] = r.IntN(120000)
		props["scroll_depth"] = float64(r.IntN(101)) / 100
		props["logged_in"] = r.IntN(2) == 0
	default: // account and product usage
		props["feature"] = fmt.Sprintf("feature_%02d", r.IntN(60))
		props["plan"] = g.plans[r.IntN(len(g.plans))]
		props["seats"] = 1 + r.IntN(250)
		props["trial"] = r.IntN(4) == 0
		props["experiment"] = map[string]any{"id": fmt.Sprintf("exp_%d", r.IntN(12)), "variant": string(rune('A' + r.IntN(3)))}
	}
	ip := fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))
	return benchMessage{
		Type:       "track",
		MessageID:  messageID,
		UserID:     fmt.Sprintf("user-%07d", user),
		Event:      g.names[name],
		Properties: props,
		Context: map[string]any{
			"library": map[string]any{"name": g.libraries[user%uint64(len(g.libraries))], "version": "6.2.0"},
			"ip":      ip,
		},
		Timestamp: sentAt.Add(-time.Duration(r.IntN(5000)) * time.Millisecond).Format(benchTimeLayout),
		SentAt:    sentAt.Format(benchTimeLayout),
	}
}

// newRunID returns 8 random hex digits.
func newRunID() string {
	var b [4]byte
	crand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
