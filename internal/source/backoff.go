package source

import "time"

// fibonacci returns the delay before retry n (0, 1, 2, …): base × the
// Fibonacci sequence 1, 1, 2, 3, 5, 8, …, capped.
func fibonacci(n int, base, cap time.Duration) time.Duration {
	a, b := time.Duration(1), time.Duration(1)
	for i := 0; i < n; i++ {
		a, b = b, a+b
		if a*base >= cap {
			return cap
		}
	}
	return min(a*base, cap)
}
