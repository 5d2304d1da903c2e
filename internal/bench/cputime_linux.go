package bench

import "golang.org/x/sys/unix"

// threadCPU is the CPU time the calling OS thread has used, in
// nanoseconds (callers lock the goroutine to its thread): on a machine
// shared with other work it shows the evaluation's own cost, where the
// wall time also holds the waits for a core.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
