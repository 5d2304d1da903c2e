package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/segment"
)

// CaseTiming is one suite case's evaluations.
type CaseTiming struct {
	Name   string
	Leaves int
	Size   uint64
	// Build is the first evaluation with criteria: what building a new
	// segment of this condition costs.
	Build time.Duration
	// Runs are the later evaluations with criteria: wall time, and the
	// CPU time of the evaluating thread.
	Runs        []time.Duration
	CPU         []time.Duration
	Median, Max time.Duration
	CPUMedian   time.Duration
}

// SegmentsResult is a whole suite's timings.
type SegmentsResult struct {
	Cases []CaseTiming
	// MedianOfMedians and Worst summarise the cases' medians and maxima;
	// CPUMedianOfMedians and CPUWorst the same in CPU time.
	MedianOfMedians, Worst       time.Duration
	CPUMedianOfMedians, CPUWorst time.Duration
	// BuildAll is every case's build, one after the other; BuildMax the
	// slowest single build.
	BuildAll, BuildMax time.Duration
}

// Refs resolves {"segment": name} to the members an earlier case
// evaluated to.
type Refs map[string]*roaring.Bitmap

// Func returns refs as a segment.Refs.
func (r Refs) Func() segment.Refs {
	return func(id string) (*roaring.Bitmap, error) {
		bm, ok := r[id]
		if !ok {
			return nil, fmt.Errorf("segment %q has not been evaluated", id)
		}
		return bm, nil
	}
}

// Median returns the median of ds (the mean of the middle two for an even
// count).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// RunSegments evaluates every suite case with criteria: once as a build,
// then runs more times for the timings. Cases run in order so that
// segment references resolve to earlier cases' members. progress, when
// not nil, is called after each case.
func RunSegments(ctx context.Context, ix *index.Index, suite []Parsed, now time.Time, runs int, progress func(CaseTiming)) (*SegmentsResult, Refs, error) {
	if runs < 1 {
		runs = 1
	}
	// One OS thread for the evaluations, so that its CPU clock is theirs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	refs := Refs{}
	res := &SegmentsResult{}
	var medians, cpuMedians []time.Duration
	for _, c := range suite {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		ct := CaseTiming{Name: c.Name, Leaves: len(c.Node.Leaves())}
		t := time.Now()
		r, err := segment.Evaluate(ix, c.Node, now, refs.Func(), true)
		ct.Build = time.Since(t)
		if err != nil {
			return nil, nil, fmt.Errorf("evaluate %s: %w", c.Name, err)
		}
		ct.Size = r.Members.GetCardinality()
		refs[c.Name] = r.Members
		for range runs {
			c0, t := threadCPU(), time.Now()
			r, err := segment.Evaluate(ix, c.Node, now, refs.Func(), true)
			d := time.Since(t)
			ct.CPU = append(ct.CPU, time.Duration(threadCPU()-c0))
			if err != nil {
				return nil, nil, fmt.Errorf("evaluate %s: %w", c.Name, err)
			}
			if got := r.Members.GetCardinality(); got != ct.Size {
				return nil, nil, fmt.Errorf("evaluate %s: %d members, the first evaluation gave %d", c.Name, got, ct.Size)
			}
			ct.Runs = append(ct.Runs, d)
		}
		ct.Median = Median(ct.Runs)
		ct.Max = slices.Max(ct.Runs)
		ct.CPUMedian = Median(ct.CPU)
		medians = append(medians, ct.Median)
		cpuMedians = append(cpuMedians, ct.CPUMedian)
		res.Worst = max(res.Worst, ct.Max)
		res.CPUWorst = max(res.CPUWorst, slices.Max(ct.CPU))
		res.BuildAll += ct.Build
		res.BuildMax = max(res.BuildMax, ct.Build)
		res.Cases = append(res.Cases, ct)
		if progress != nil {
			progress(ct)
		}
	}
	res.MedianOfMedians = Median(medians)
	res.CPUMedianOfMedians = Median(cpuMedians)
	return res, refs, nil
}
