package condition

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestNumberMatchIsMatch checks the unboxed numeric matcher of an
// aggregate against Match for every operator and awkward numbers.
func TestNumberMatchIsMatch(t *testing.T) {
	xs := []float64{math.Inf(-1), -3, 0, math.Copysign(0, -1), 2.5, 3, 3.0000001, 10, math.Inf(1), math.NaN()}
	for _, test := range []string{
		`"op":"gt","value":3`, `"op":"gte","value":3`, `"op":"lt","value":3`, `"op":"lte","value":3`,
		`"op":"between","value":[0,3]`, `"op":"eq","value":3`, `"op":"neq","value":3`,
		`"op":"in","value":[0,10]`, `"op":"not_in","value":[3]`,
	} {
		n, err := Parse([]byte(`{"event":"E","aggregate":{"fn":"sum","property":"v",` + test + `}}`))
		if err != nil {
			t.Fatalf("%s: %v", test, err)
		}
		fast := n.Aggregate.NumberMatch()
		for _, x := range xs {
			if got, want := fast(x), n.Aggregate.Test.Match(x, true, time.Time{}); got != want {
				t.Errorf("%s at %s: %v, Match %v", test, fmt.Sprint(x), got, want)
			}
		}
	}
}
