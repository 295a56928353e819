package webui

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// Throughput charts are drawn on the server as inline SVG: no script, no
// library, nothing fetched.

// series is employees/s per equal interval of [From, To).
type series struct {
	From, To time.Time
	Rates    []float64
}

// runBuckets is how many intervals a run's chart has.
const runBuckets = 40

// runSeries is a run's employees/s over [start, end), from the chunks that
// succeeded in it, by when they ended.
func runSeries(cells []store.ChunkCell, start, end time.Time) series {
	s := series{From: start, To: end, Rates: make([]float64, runBuckets)}
	span := end.Sub(start)
	if span <= 0 {
		return s
	}
	width := span / runBuckets
	for _, c := range cells {
		if c.Status != domain.ChunkSucceeded || c.FinishedAt == nil {
			continue
		}
		i := int(c.FinishedAt.Sub(start) / max(width, 1))
		s.Rates[min(max(i, 0), runBuckets-1)] += float64(c.Employees)
	}
	for i := range s.Rates {
		s.Rates[i] /= max(width.Seconds(), 1e-3)
	}
	return s
}

// windowSeries is employees/s per bucket over [since, until), from the ledger's
// sums per bucket (buckets it left out had none).
func windowSeries(points []store.ThroughputPoint, since, until time.Time, bucket time.Duration) series {
	n := int(until.Sub(since) / bucket)
	s := series{From: since, To: since.Add(time.Duration(n) * bucket), Rates: make([]float64, max(n, 1))}
	for _, p := range points {
		i := int(p.Start.Sub(since) / bucket)
		if i >= 0 && i < len(s.Rates) {
			s.Rates[i] += float64(p.Employees) / bucket.Seconds()
		}
	}
	return s
}

// The chart's drawing area, in SVG user units; the SVG scales to its box.
const (
	chartW, chartH    = 640, 180
	padLeft, padRight = 56, 8
	padTop, padBottom = 10, 24
)

// svg draws s as an area chart with its scale: the highest rate at the top, the
// interval's ends below. label is the chart's accessible name.
func (s series) svg(label string) template.HTML {
	peak := slices.Max(append([]float64{0}, s.Rates...))
	top := niceCeil(peak)
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBottom)
	x := func(i int) float64 { return padLeft + plotW*float64(i)/float64(max(len(s.Rates), 1)) }
	y := func(v float64) float64 { return padTop + plotH*(1-v/top) }
	var pts strings.Builder
	fmt.Fprintf(&pts, "%.1f,%.1f", x(0), y(0))
	for i, r := range s.Rates {
		fmt.Fprintf(&pts, " %.1f,%.1f %.1f,%.1f", x(i), y(r), x(i+1), y(r))
	}
	fmt.Fprintf(&pts, " %.1f,%.1f", x(len(s.Rates)), y(0))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="none">`,
		chartW, chartH, template.HTMLEscapeString(label))
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padLeft, chartW-padRight, y(top*f), y(top*f))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, y(top*f)+4,
			template.HTMLEscapeString(decimal(top*f, 0)))
	}
	fmt.Fprintf(&b, `<polygon class="area" points="%s"/>`, pts.String())
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text>`, padLeft, chartH-6, template.HTMLEscapeString(clock(s.From)))
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-padRight, chartH-6,
		template.HTMLEscapeString(clock(s.To)))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped text
}

func clock(t time.Time) string { return t.Local().Format("15:04:05") }

// niceCeil is the smallest of 1, 2, 5 × 10^k at or above v (1 for v ≤ 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	for p := 1.0; ; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}
