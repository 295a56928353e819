package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/nominacl/consolidation/pkg/money"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// progressView shows a run's progress on stderr while follow watches it. On a
// terminal it redraws one line in place (a bar, the chunks' percent, employees,
// elapsed, ETA); otherwise (a log file, a pipe, CI) it writes a plain line when
// the chunks done change, at most every plainEvery, so captured output holds no
// carriage returns. The bar never moves past what the run did: a run that ended
// early is shown where it stopped.
type progressView struct {
	w        io.Writer
	terminal bool
	drawn    bool      // a line is on screen, to end with a newline
	last     time.Time // when the last plain line was written
	lastDone int32     // chunks done on the last plain line
}

// plainEvery is the least time between two plain progress lines.
const plainEvery = 5 * time.Second

func newProgressView(w io.Writer) *progressView {
	f, ok := w.(*os.File)
	return &progressView{w: w, terminal: ok && term.IsTerminal(int(f.Fd())), lastDone: -1}
}

// show draws p (redrawn on a terminal, else a plain line when due).
func (v *progressView) show(p *consolidationv1.Progress) {
	line := progressLine(p)
	if v.terminal {
		fmt.Fprintf(v.w, "\r%s %s\033[K", bar(p.GetPercent(), 30), line)
		v.drawn = true
		return
	}
	now := time.Now()
	if p.GetChunksDone() == v.lastDone || !v.last.IsZero() && now.Sub(v.last) < plainEvery {
		return
	}
	fmt.Fprintln(v.w, line)
	v.last, v.lastDone = now, p.GetChunksDone()
}

// end leaves the terminal's line as it is and moves below it.
func (v *progressView) end() {
	if v.drawn {
		fmt.Fprintln(v.w)
		v.drawn = false
	}
}

// progressLine says how far a run is, with one percentage (the chunks done, as
// the API computes it) and no ETA before a chunk is done.
func progressLine(p *consolidationv1.Progress) string {
	eta := "ETA unknown"
	if p.GetChunksDone() > 0 && p.GetChunksDone() < p.GetTotalChunks() {
		eta = "ETA " + p.GetEta().AsDuration().Round(time.Second).String()
	}
	return fmt.Sprintf("%5.1f %% chunks %s of %s, employees %s of %s consolidated, elapsed %s, %s", p.GetPercent(),
		money.Grouped(int64(p.GetChunksDone())), money.Grouped(int64(p.GetTotalChunks())),
		money.Grouped(int64(p.GetEmployeesDone())), money.Grouped(int64(p.GetTotalEmployees())),
		p.GetElapsed().AsDuration().Round(time.Second), eta)
}

// bar draws percent as width cells.
func bar(percent float64, width int) string {
	full := min(width, max(0, int(percent*float64(width)/100)))
	return "[" + strings.Repeat("=", full) + strings.Repeat(" ", width-full) + "]"
}
