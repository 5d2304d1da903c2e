package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
)

// benchLog is the in-process server's logger during a benchmark: errors go
// to the output as they happen, warnings are counted by message and shown
// in the report (a warning per event would flood the terminal and cost CPU
// the measurement should not pay).
type benchLog struct {
	next slog.Handler
	st   *benchLogState
}

type benchLogState struct {
	mu     sync.Mutex
	counts map[string]int
}

func newBenchLog(out io.Writer) *benchLog {
	return &benchLog{
		next: slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelError}),
		st:   &benchLogState{counts: map[string]int{}},
	}
}

func (h *benchLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *benchLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.next.Handle(ctx, r)
	}
	h.st.mu.Lock()
	h.st.counts[r.Message]++
	h.st.mu.Unlock()
	return nil
}

func (h *benchLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &benchLog{next: h.next.WithAttrs(as), st: h.st}
}

func (h *benchLog) WithGroup(name string) slog.Handler {
	return &benchLog{next: h.next.WithGroup(name), st: h.st}
}

// warnings lists the counted warnings, most frequent first.
func (h *benchLog) warnings() []string {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	return countedWarnings(h.st.counts)
}

// countedWarnings lists warnings counted by message, most frequent first.
func countedWarnings(counts map[string]int) []string {
	msgs := slices.Sorted(maps.Keys(counts))
	slices.SortStableFunc(msgs, func(a, b string) int { return counts[b] - counts[a] })
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d× %q", counts[m], m))
	}
	return out
}

// newLogger is a text logger on w at level (debug, info, warn, error).
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
