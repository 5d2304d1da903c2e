package condition

import (
	"fmt"
	"math"
	"time"
)

// ParseDuration parses a condition duration: a positive decimal integer
// followed by exactly one unit, s (second), m (minute), h (hour), d (day =
// 24h) or w (week = 7d), as in "90s", "30m", "12h", "7d", "2w". Signs,
// spaces, fractions and compound forms ("1h30m") are refused, as are
// durations that do not fit a time.Duration (about 292 years).
func ParseDuration(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("invalid duration %q: want a positive integer and a unit s, m, h, d or w", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, fmt.Errorf("invalid duration %q: unit must be s, m, h, d or w", s)
	}
	var n int64
	for _, c := range []byte(s[:len(s)-1]) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid duration %q: want a positive integer and a unit s, m, h, d or w", s)
		}
		if n > (math.MaxInt64-9)/10 {
			return 0, fmt.Errorf("invalid duration %q: longer than about 292 years", s)
		}
		n = n*10 + int64(c-'0')
	}
	if n == 0 {
		return 0, fmt.Errorf("invalid duration %q: must be positive", s)
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("invalid duration %q: longer than about 292 years", s)
	}
	return time.Duration(n) * unit, nil
}
