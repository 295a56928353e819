package bench

import (
	"testing"
	"time"
)

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{3}, Spread{Median: 3, Min: 3, Max: 3, N: 1}},
		{[]float64{5, 1, 3}, Spread{Median: 3, Min: 1, Max: 5, N: 3}},
		{[]float64{4, 1, 2, 10}, Spread{Median: 3, Min: 1, Max: 10, N: 4}},
	} {
		if got := spreadOf(tc.xs); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.xs, got, tc.want)
		}
	}
}

func TestSpreadFormats(t *testing.T) {
	s := spreadOf([]float64{4.79, 5.56, 4.68})
	if got, want := s.seconds(), "4.79 s (4.68 s–5.56 s)"; got != want {
		t.Errorf("seconds() = %q, want %q", got, want)
	}
	if got, want := spreadOf([]float64{0.0794}).seconds(), "79 ms"; got != want {
		t.Errorf("seconds() = %q, want %q", got, want)
	}
	if got, want := spreadOf([]float64{1.2, 1.1, 1.5}).plain("%.2f"), "1.20 (1.10–1.50)"; got != want {
		t.Errorf("plain() = %q, want %q", got, want)
	}
	if got := duration(1500 * time.Millisecond); got != "1.50 s" {
		t.Errorf("duration = %q", got)
	}
}

func TestSummaryOf(t *testing.T) {
	s := summaryOf([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if s.Mean != 5 || s.Median != 4.5 || s.Min != 2 || s.Max != 9 {
		t.Errorf("summaryOf = %+v", s)
	}
	if want := 2.138089935299395; s.Stdev < want-1e-12 || s.Stdev > want+1e-12 { // sample stdev, n-1
		t.Errorf("stdev %v, want %v", s.Stdev, want)
	}
	if one := summaryOf([]float64{3}); one != (summary{Mean: 3, Median: 3, Min: 3, Max: 3}) {
		t.Errorf("one run: %+v", one)
	}
}

func TestPercentile(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 200; i++ {
		xs = append(xs, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		xs   []time.Duration
		p    int
		want time.Duration
	}{
		{xs, 50, 100 * time.Millisecond}, // nearest rank: the 100th of 200
		{xs, 99, 198 * time.Millisecond},
		{xs, 100, 200 * time.Millisecond},
		{xs[:1], 99, time.Millisecond},
		{xs[:3], 50, 2 * time.Millisecond},
	} {
		if got := percentile(tc.xs, tc.p); got != tc.want {
			t.Errorf("percentile(%d of %d) = %v, want %v", tc.p, len(tc.xs), got, tc.want)
		}
	}
}
