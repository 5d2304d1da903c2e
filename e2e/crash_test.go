//go:build unix

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashSIGKILL kills the server with SIGKILL while clients stream
// batches to it, restarts it on the same data directory, and checks that
// every acknowledged message is there exactly once, that no message is
// there twice, and that retried batches are deduplicated. It does so for
// several rounds on the same data. Index checkpoints come every few
// hundred events, so that kills land in checkpoints and in merges of the
// index's base too; every restart must open the index from its files
// (a rebuild from the store would hide damage to them).
func TestCrashSIGKILL(t *testing.T) {
	const (
		clients   = 6
		minRounds = 3 // kill/restart cycles
		maxRounds = 6 // more if no request happened to be in flight at a kill
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "cohort.yaml")
	if err := os.WriteFile(cfg, []byte("index:\n  checkpoint_events: 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lg := newLedger()
	srv := startServer(t, dir, "--config", cfg)
	cutRounds := 0
	for round := 0; round < maxRounds && (round < minRounds || cutRounds == 0); round++ {
		st := startStream(t, srv, lg, seed, round, clients)
		st.waitProgress(t, 20+rng.IntN(60), 2*time.Second)
		st.signal(t, syscall.SIGKILL)
		srv.waitKilled(t)
		took := time.Since(st.start)
		st.stop(t)
		lg.checkAnswers(t)
		stats := lg.stats(round)
		if stats.cut > 0 {
			cutRounds++
		}
		t.Logf("round %d: SIGKILL after %s of streaming: %s", round, took.Round(time.Millisecond), stats)

		srv = startServer(t, dir, "--config", cfg)
		if logs := srv.logs.String(); strings.Contains(logs, "unusable") || !strings.Contains(logs, "index opened from its checkpoint") {
			t.Fatalf("round %d: the index was not opened from its files:\n%s", round, logs)
		}
		when := fmt.Sprintf("restart after SIGKILL #%d", round+1)
		lg.verify(t, srv, when)
		lg.checkRetries(t, srv, rng, when)
	}
	if cutRounds == 0 {
		t.Fatalf("no request was in flight at any of the kills: the test did not test a crash mid-stream")
	}
	srv.stop(t)
	merged, _ := filepath.Glob(filepath.Join(dir, "index", "*", "prof-*.idx"))
	light, _ := filepath.Glob(filepath.Join(dir, "index", "*", "evts-*.idx"))
	if len(merged) == 0 || len(light) == 0 {
		files, _ := filepath.Glob(filepath.Join(dir, "index", "*", "*"))
		t.Fatalf("no merged index base or no checkpoint of the event columns: the test did not cover them (%v)", files)
	}
}
