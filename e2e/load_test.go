//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Load used by the crash and shutdown tests: several clients stream
// /v1/batch requests and a ledger records what was sent and which requests
// the server acknowledged, so the data can be checked after a restart.

const (
	loadUsers       = 40  // userIds the messages spread over
	loadBatchSize   = 50  // messages per request
	loadMaxBatches  = 400 // per client and stream, whatever happens
	identifyPercent = 10  // share of identify calls among the messages
)

type batchState int

const (
	batchPending batchState = iota // not answered yet
	batchAcked                     // 200 {"success": true}
	batchCut                       // no answer: the connection failed
	batchRefused                   // an answer other than an acknowledgement
)

// batchRec is one /v1/batch request body and what became of it.
type batchRec struct {
	id     string
	body   []byte
	msgs   []*msgRec
	state  batchState
	status int    // batchRefused: the status and answer
	answer string // batchRefused: the answer; batchCut: the error
	early  bool   // answered with an error before the server was signalled
	late   bool   // acknowledged after the server was signalled
}

// msgRec is one message of a batch.
type msgRec struct {
	id    string // messageId
	user  string
	track bool   // track, else identify
	trait string // identify: the trait it sets
	value int    // identify: the value it sets the trait to
	batch *batchRec
}

// ledger is everything the clients sent, across server restarts.
type ledger struct {
	mu      sync.Mutex
	batches []*batchRec
	msgs    map[string]*msgRec
}

func newLedger() *ledger { return &ledger{msgs: map[string]*msgRec{}} }

func loadUser(i int) string { return fmt.Sprintf("load-user-%02d", i) }

// wireMsg is a message as the load clients send it.
type wireMsg struct {
	Type       string         `json:"type"`
	MessageID  string         `json:"messageId"`
	UserID     string         `json:"userId"`
	Event      string         `json:"event,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
}

// newBatch makes the b-th batch of client w in round r. Each client sets a
// trait of its own, "seq_w<w>", to values that only grow, so that after a
// restart each profile's value must be at least the largest acknowledged.
func (l *ledger) newBatch(rng *rand.Rand, r, w, b int) *batchRec {
	br := &batchRec{id: fmt.Sprintf("r%d-w%d-b%03d", r, w, b)}
	msgs := make([]wireMsg, loadBatchSize)
	for i := range msgs {
		m := &msgRec{
			id:    fmt.Sprintf("%s-m%02d", br.id, i),
			user:  loadUser(rng.IntN(loadUsers)),
			track: rng.IntN(100) >= identifyPercent,
			batch: br,
		}
		wm := wireMsg{MessageID: m.id, UserID: m.user}
		if m.track {
			wm.Type = "track"
			wm.Event = []string{"Order Completed", "Page Viewed", "Song Played"}[rng.IntN(3)]
			wm.Properties = map[string]any{"round": r, "client": w, "batch": b, "i": i, "amount": float64(rng.IntN(10000)) / 100}
		} else {
			m.trait = fmt.Sprintf("seq_w%d", w)
			m.value = (r*loadMaxBatches+b)*loadBatchSize + i
			wm.Type = "identify"
			wm.Traits = map[string]any{m.trait: m.value, "plan": []string{"free", "pro"}[rng.IntN(2)]}
		}
		msgs[i] = wm
		br.msgs = append(br.msgs, m)
	}
	body, err := json.Marshal(map[string]any{"batch": msgs})
	if err != nil {
		panic(err)
	}
	br.body = body
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, br)
	for _, m := range br.msgs {
		l.msgs[m.id] = m
	}
	return br
}

// streamer runs the load clients of one round against one server.
type streamer struct {
	srv      *server
	lg       *ledger
	seed     uint64
	round    int
	start    time.Time
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	inflight atomic.Int64
	acked    atomic.Int64
	stopped  atomic.Bool // clients send no new request
	signaled atomic.Bool // the server has been sent a signal: failures are expected
}

// startStream starts clients that each send batches back to back until
// the server stops answering, stop is called, or loadMaxBatches.
func startStream(t *testing.T, srv *server, lg *ledger, seed uint64, round, clients int) *streamer {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s := &streamer{srv: srv, lg: lg, seed: seed, round: round, start: time.Now(), cancel: cancel}
	t.Cleanup(func() { s.cancel(); s.wg.Wait() })
	for w := range clients {
		s.wg.Add(1)
		go s.client(ctx, w)
	}
	return s
}

func (s *streamer) client(ctx context.Context, w int) {
	defer s.wg.Done()
	rng := rand.New(rand.NewPCG(s.seed+uint64(s.round), uint64(w)))
	for b := 0; b < loadMaxBatches && !s.stopped.Load() && ctx.Err() == nil; b++ {
		br := s.lg.newBatch(rng, s.round, w, b)
		s.inflight.Add(1)
		status, answer, err := s.srv.post(ctx, "/v1/batch", br.body)
		s.inflight.Add(-1)
		s.lg.mu.Lock()
		switch {
		case err != nil:
			br.state, br.answer = batchCut, err.Error()
		case acknowledged(status, answer):
			br.state = batchAcked
		default:
			br.state, br.status, br.answer = batchRefused, status, string(answer)
		}
		signaled := s.signaled.Load()
		br.early = br.state != batchAcked && !signaled
		br.late = br.state == batchAcked && signaled
		s.lg.mu.Unlock()
		if br.state == batchAcked {
			s.acked.Add(1)
		} else {
			return
		}
	}
}

// waitProgress waits until the clients have had minAcked batches
// acknowledged, or for at most maxWait once they have had one, and then
// for a request to be in flight.
func (s *streamer) waitProgress(t *testing.T, minAcked int, maxWait time.Duration) {
	t.Helper()
	hard := time.Now().Add(maxWait + 20*time.Second)
	for {
		n := s.acked.Load()
		if n >= int64(minAcked) || (n > 0 && time.Since(s.start) >= maxWait) {
			break
		}
		if time.Now().After(hard) {
			t.Fatalf("round %d: %d batches acknowledged in %s, want %d", s.round, n, time.Since(s.start).Round(time.Millisecond), minAcked)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); s.inflight.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: no request in flight for 5 s", s.round)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// signal sends sig to the server while the clients are streaming; from
// then on requests may fail.
func (s *streamer) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	s.signaled.Store(true)
	s.srv.signal(t, sig)
}

// stop stops the clients and waits for them (their requests time out).
func (s *streamer) stop(t *testing.T) {
	t.Helper()
	s.stopped.Store(true)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("round %d: clients still running 30 s after they were stopped", s.round)
	}
	s.cancel()
}

// roundStats counts the round's batches by state.
type roundStats struct {
	acked, late, cut, refused, early int
	cutErrs                          []string // distinct errors of the cut requests
}

func (s roundStats) String() string {
	return fmt.Sprintf("%d batches acknowledged (%d of them after the signal), %d cut (no answer: %s)", s.acked, s.late, s.cut, strings.Join(s.cutErrs, "; "))
}

func (l *ledger) stats(round int) roundStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var st roundStats
	prefix := fmt.Sprintf("r%d-", round)
	for _, b := range l.batches {
		if !strings.HasPrefix(b.id, prefix) {
			continue
		}
		switch b.state {
		case batchAcked:
			st.acked++
		case batchCut:
			st.cut++
			// The error without the URL, which differs by request.
			e := b.answer
			if i := strings.LastIndex(e, ": "); i >= 0 {
				e = e[i+2:]
			}
			if !slices.Contains(st.cutErrs, e) {
				st.cutErrs = append(st.cutErrs, e)
			}
		case batchRefused:
			st.refused++
		}
		if b.early {
			st.early++
		}
		if b.late {
			st.late++
		}
	}
	return st
}

// checkAnswers fails the test for every request the server answered with
// anything but an acknowledgement, and for every request that failed
// before the server was signalled.
func (l *ledger) checkAnswers(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, b := range l.batches {
		if b.state == batchRefused || b.early {
			if n++; n <= 10 {
				t.Errorf("POST /v1/batch %s (valid, %d messages): HTTP %d %s, want 200 {\"success\":true}", b.id, len(b.msgs), b.status, strings.TrimSpace(b.answer))
			}
		}
	}
	if n > 10 {
		t.Errorf("... and %d more refused requests", n-10)
	}
}

// verify reads every load user's events and profile and checks them
// against the ledger: every acknowledged message is stored exactly once,
// no message is stored twice, none is stored that was never sent, and
// each client's trait is at least its largest acknowledged value.
func (l *ledger) verify(t *testing.T, srv *server, when string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	counts := map[string]int{} // messageId -> times stored
	for u := range loadUsers {
		user := loadUser(u)
		evs, _ := srv.events(t, user)
		for _, ev := range evs {
			counts[ev.MessageID]++
			m := l.msgs[ev.MessageID]
			switch {
			case m == nil:
				bad("%s has event %q with messageId %q, which was never sent", user, ev.Event, ev.MessageID)
			case m.user != user:
				bad("%s has event %s, which was sent for %s", user, ev.MessageID, m.user)
			case !m.track:
				bad("%s has an event for identify message %s", user, ev.MessageID)
			}
		}
	}
	acked, present, tracks := 0, 0, 0
	for id, m := range l.msgs {
		n := counts[id]
		if m.track {
			tracks++
		}
		if n > 0 {
			present++
		}
		if n > 1 {
			bad("message %s (%s) is stored %d times", id, m.user, n)
		}
		if m.track && m.batch.state == batchAcked {
			acked++
			if n == 0 {
				bad("acknowledged message %s (%s, batch %s) is missing", id, m.user, m.batch.id)
			}
		}
	}

	// Traits: last writer wins per client, whose values only grow.
	type key struct{ user, trait string }
	maxAcked, sent := map[key]int{}, map[key]map[int]bool{}
	for _, m := range l.msgs {
		if m.track {
			continue
		}
		k := key{m.user, m.trait}
		if sent[k] == nil {
			sent[k] = map[int]bool{}
		}
		sent[k][m.value] = true
		if m.batch.state == batchAcked && m.value >= maxAcked[k] {
			maxAcked[k] = m.value
		}
	}
	users := map[string]map[string]any{}
	for k := range sent {
		if _, ok := users[k.user]; ok {
			continue
		}
		u, found := srv.user(t, k.user)
		if !found {
			users[k.user] = nil
			continue
		}
		users[k.user] = u.Traits
	}
	for k, vals := range sent {
		want, wasAcked := maxAcked[k]
		checkTrait(bad, k.user, k.trait, users[k.user], vals, want, wasAcked)
	}

	if len(problems) > 0 {
		slices.Sort(problems)
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		t.Fatalf("%s: %d acknowledged track messages, %d of the %d sent are stored:\n%s", when, acked, present, tracks, strings.Join(problems, "\n"))
	}
	t.Logf("%s: all %d acknowledged track messages are stored exactly once (%d of the %d sent are stored)", when, acked, present, tracks)
}

// traits reads the traits of every load user that exists.
func traitsOf(t *testing.T, srv *server) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for u := range loadUsers {
		if p, found := srv.user(t, loadUser(u)); found {
			out[loadUser(u)] = p.Traits
		}
	}
	return out
}

// resend sends batches again, as a client retrying, and expects each to be
// acknowledged; a cut batch is acknowledged from then on.
func (l *ledger) resend(t *testing.T, srv *server, batches []*batchRec) {
	t.Helper()
	for _, b := range batches {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		status, answer, err := srv.post(ctx, "/v1/batch", b.body)
		cancel()
		if err != nil {
			t.Fatalf("resending batch %s: %v", b.id, err)
		}
		if !acknowledged(status, answer) {
			t.Fatalf("resending batch %s: HTTP %d %s, want 200 {\"success\":true}", b.id, status, answer)
		}
		l.mu.Lock()
		b.state = batchAcked
		l.mu.Unlock()
	}
}

// pick returns the batches in the given state, and at most n of the
// acknowledged ones chosen at random when state is batchAcked.
func (l *ledger) pick(state batchState, n int, rng *rand.Rand) []*batchRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*batchRec
	for _, b := range l.batches {
		if b.state == state {
			out = append(out, b)
		}
	}
	if state == batchAcked {
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		out = out[:min(n, len(out))]
	}
	return out
}

// checkRetries resends the batches a crash cut (they may or may not have
// been stored: now they must be, once) and some acknowledged ones (they
// must be deduplicated, traits unchanged), then verifies everything.
func (l *ledger) checkRetries(t *testing.T, srv *server, rng *rand.Rand, when string) {
	t.Helper()
	cut := l.pick(batchCut, 0, rng)
	l.resend(t, srv, cut)
	before := traitsOf(t, srv)
	again := l.pick(batchAcked, 8, rng)
	l.resend(t, srv, again)
	if diff := traitsDiff(before, traitsOf(t, srv)); len(diff) > 0 {
		t.Fatalf("%s: resending %d acknowledged batches (%s) changed traits, so their messages were applied again:\n%s",
			when, len(again), batchIDs(again), strings.Join(diff, "\n"))
	}
	l.verify(t, srv, fmt.Sprintf("%s, after resending %d cut and %d acknowledged batches", when, len(cut), len(again)))
}

// traitsDiff lists the traits that differ, at most 20.
func traitsDiff(before, after map[string]map[string]any) []string {
	var out []string
	for u := range loadUsers {
		user := loadUser(u)
		b, a := before[user], after[user]
		for _, k := range slices.Sorted(maps.Keys(b)) {
			if mustJSON(b[k]) != mustJSON(a[k]) {
				out = append(out, fmt.Sprintf("%s: %s was %s, is %s", user, k, mustJSON(b[k]), mustJSON(a[k])))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if _, ok := b[k]; !ok {
				out = append(out, fmt.Sprintf("%s: %s was unset, is %s", user, k, mustJSON(a[k])))
			}
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... and %d more", len(out)-20))
	}
	return out
}

func batchIDs(bs []*batchRec) string {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.id
	}
	return strings.Join(ids, " ")
}

// checkTrait reports, through bad, a counter trait whose stored value was
// never sent, is older than the newest acknowledged one (want, when acked),
// or is missing although a value was acknowledged: what a crash must not
// do to last-writer-wins traits.
func checkTrait(bad func(string, ...any), user, trait string, traits map[string]any, sent map[int]bool, want int, acked bool) {
	v, ok := traits[trait]
	if !ok {
		if acked {
			bad("%s has no trait %s; the acknowledged value %d is lost", user, trait, want)
		}
		return
	}
	f, isNum := v.(float64)
	switch {
	case !isNum || !sent[int(f)]:
		bad("%s has %s = %v, which was never sent", user, trait, v)
	case acked && int(f) < want:
		bad("%s has %s = %v, older than the acknowledged %d", user, trait, v, want)
	}
}
