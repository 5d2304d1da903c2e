package store

import "testing"

func TestLoadSpanFraction(t *testing.T) {
	s := LoadSpan{NextProfile: 100, HasEvents: true, FirstDay: 10, LastDay: 13} // 4 days
	for _, c := range []struct {
		day, num uint32
		want     float64
	}{
		{9, 50, 0}, {10, 0, 0}, {10, 50, 0.125}, {11, 0, 0.25}, {12, 50, 0.625}, {13, 100, 1}, {13, 500, 1}, {20, 0, 1},
	} {
		if got := s.Fraction(c.day, c.num); got != c.want {
			t.Errorf("Fraction(%d, %d) = %g, want %g", c.day, c.num, got, c.want)
		}
	}
	if got := (LoadSpan{}).Fraction(10, 5); got != 0 {
		t.Errorf("no events: %g", got)
	}
}
