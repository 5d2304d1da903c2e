package source

import (
	"testing"
	"time"
)

func TestFibonacci(t *testing.T) {
	base, cap := 500*time.Millisecond, 30*time.Second
	want := []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond,
		2500 * time.Millisecond, 4 * time.Second, 6500 * time.Millisecond, 10500 * time.Millisecond, 17 * time.Second, 27500 * time.Millisecond, cap, cap}
	for n, w := range want {
		if got := fibonacci(n, base, cap); got != w {
			t.Errorf("retry %d: %s, want %s", n, got, w)
		}
	}
	if got := fibonacci(1000, base, cap); got != cap {
		t.Errorf("retry 1000: %s, want the cap", got)
	}
}
