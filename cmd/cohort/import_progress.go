package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports an import's progress on stderr: a bar redrawn in place
// when stderr is a terminal, otherwise a line every few seconds.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	total int64

	bytes    atomic.Int64 // bytes read from the files (compressed, as on disk)
	msgs     atomic.Int64 // messages read
	rejected atomic.Int64 // messages rejected so far

	mu      sync.Mutex // serialises writes to w
	file    string
	started time.Time
	stop    chan struct{}
	done    chan struct{}
}

func newProgress(w io.Writer, total int64, every time.Duration) *progress {
	if every <= 0 {
		every = 5 * time.Second
	}
	p := &progress{w: w, tty: isTerminal(w), every: every, total: total}
	if p.tty {
		p.every = 200 * time.Millisecond
	}
	return p
}

// isTerminal reports whether w is a character device other than a dumb
// terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) start() {
	p.started = time.Now()
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
}

// finish stops the reports; on a terminal the bar is left complete.
func (p *progress) finish() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func (p *progress) setFile(name string) {
	p.mu.Lock()
	p.file = name
	p.mu.Unlock()
}

// note prints a message (a retry, say) without garbling the bar.
func (p *progress) note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "cohort import: %s\n", msg)
	if p.tty {
		p.draw()
	}
}

// draw writes the bar or the progress line; p.mu is held.
func (p *progress) draw() {
	done, msgs, rej := p.bytes.Load(), p.msgs.Load(), p.rejected.Load()
	elapsed := time.Since(p.started).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(msgs) / elapsed
	}
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	stats := fmt.Sprintf("%3.0f%%  %s / %s  %d messages  %.0f/s  %d rejected",
		frac*100, byteSize(done), byteSize(p.total), msgs, rate, rej)
	if p.total <= 0 { // standard input: no size known
		stats = fmt.Sprintf("%s  %d messages  %.0f/s  %d rejected", byteSize(done), msgs, rate, rej)
		if !p.tty {
			fmt.Fprintf(p.w, "cohort import: %s  (%s)\n", stats, p.file)
		} else {
			fmt.Fprintf(p.w, "\r%s\033[K", stats)
		}
		return
	}
	if !p.tty {
		fmt.Fprintf(p.w, "cohort import: %s  (%s)\n", stats, p.file)
		return
	}
	const width = 30
	fill := int(frac * width)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	fmt.Fprintf(p.w, "\r[%s] %s\033[K", bar, stats)
}

// byteSize formats a byte count for people.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
