package bench

import (
	"fmt"
	"slices"
	"time"
)

// Spread is the median, lowest and highest of a figure over a benchmark's repeats.
type Spread struct {
	Median, Min, Max float64
	N                int
}

// spreadOf summarizes xs (the median of an even count is the mean of the middle two).
func spreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// seconds formats a spread of seconds as durations: "4.79 s (4.68 s–5.56 s)".
func (s Spread) seconds() string {
	if s.N == 0 {
		return "—"
	}
	d := func(x float64) string { return duration(time.Duration(x * float64(time.Second))) }
	if s.N == 1 {
		return d(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", d(s.Median), d(s.Min), d(s.Max))
}

// plain formats a spread of plain numbers with the given verb: "1.29 (1.19–1.57)".
func (s Spread) plain(verb string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 {
		return fmt.Sprintf(verb, s.Median)
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.Median, s.Min, s.Max)
}

// duration is d in ms below a second, in s with two decimals from there.
func duration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
