//go:build unix

package e2e

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMUnderLoad sends SIGTERM while clients stream batches: the
// server must answer the requests it has taken (acknowledging them, never
// with an error), exit 0, and have every acknowledged message after a
// restart.
func TestSIGTERMUnderLoad(t *testing.T) {
	const clients = 6
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	lg := newLedger()
	srv := startServer(t, dir)

	st := startStream(t, srv, lg, seed, 0, clients)
	st.waitProgress(t, 30+rng.IntN(60), 2*time.Second)
	sent := time.Now()
	st.signal(t, syscall.SIGTERM)
	srv.expectCleanExit(t)
	took := time.Since(sent)
	st.stop(t)
	lg.checkAnswers(t)
	t.Logf("exit 0 %s after SIGTERM; %s", took.Round(time.Millisecond), lg.stats(0))

	srv = startServer(t, dir)
	lg.verify(t, srv, "restart after SIGTERM")
	lg.checkRetries(t, srv, rng, "restart after SIGTERM")
	srv.stop(t)
}
