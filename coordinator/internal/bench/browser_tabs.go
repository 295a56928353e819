package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nominacl/consolidation/pkg/localdb"
)

// browser is a headless Chromium whose tabs watch run pages: real tabs, running
// the dashboard's own script (coordinator/internal/webui/static/dashboard.js).
type browser struct {
	ctx    context.Context // the browser's
	cancel context.CancelFunc
	pid    int
}

// tabHosts is the name every tab's host ends with: Chromium resolves each
// tabN.dashboard.test to the loopback address. A browser keeps at most 6
// HTTP/1.1 connections to one host, and each tab holds one open for its events;
// a host of its own per tab gives every tab its connections, as 20 people's
// browsers would (the benchmark's dashboard is plain HTTP/1.1, as behind a proxy
// that ends TLS).
const tabHosts = ".dashboard.test"

// startBrowser starts a headless Chromium (Debian's chromium, installed when
// missing as the browser test does).
func startBrowser(ctx context.Context) (*browser, error) {
	path, err := localdb.Chromium()
	if err != nil {
		return nil, err
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("host-resolver-rules", "MAP *"+tabHosts+" 127.0.0.1"))...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	cancel := func() { cancelBrowser(); cancelAlloc() }
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	b := &browser{ctx: bctx, cancel: cancel}
	if c := chromedp.FromContext(bctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pid = c.Browser.Process().Pid
	}
	return b, nil
}

// cpu is the CPU seconds of the browser and every process under it.
func (b *browser) cpu() float64 {
	if b.pid == 0 {
		return 0
	}
	return treeCPU(b.pid)
}

// openTabs opens n tabs on a run's page, each on a host of its own. The
// returned func waits until every tab has seen the run end and loaded the final
// details (or stops waiting when ctx ends, or 60 s after it was called), closes
// the tabs and returns the first error any met, a console error included.
func (b *browser) openTabs(ctx context.Context, addr string, n int, runID int64) func() error {
	_, port, _ := net.SplitHostPort(addr)
	var wg sync.WaitGroup
	errs := make([]error, n)
	tabs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	var mu sync.Mutex
	var consoleErrs []string
	for i := range n {
		tabs[i], cancels[i] = chromedp.NewContext(b.ctx)
		go func() {
			for m, err := range chromedp.Console(tabs[i]) {
				if err != nil {
					return
				}
				if m.Type == chromedp.ConsoleError || m.IsException() {
					mu.Lock()
					consoleErrs = append(consoleErrs, fmt.Sprintf("tab %d: %s", i+1, m.Text))
					mu.Unlock()
				}
			}
		}()
		url := fmt.Sprintf("http://tab%d%s:%s/ui/runs/%d", i+1, tabHosts, port, runID)
		wg.Go(func() { errs[i] = chromedp.Do(tabs[i], chromedp.Navigate(url)) })
	}
	return func() error {
		wg.Wait()
		deadline := time.Now().Add(time.Minute)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		for i := range n {
			if errs[i] != nil {
				continue
			}
			wg.Go(func() {
				// The page marks the card final at the last event, then fetches the
				// details once more: an ended run's totals carry a verified badge.
				tctx, stop := context.WithDeadline(tabs[i], deadline)
				defer stop()
				_, errs[i] = chromedp.Run(tctx, chromedp.Poll[bool](
					`document.getElementById("progress").dataset.final === "1" && document.querySelector("#totals-h .badge") !== null`,
					chromedp.WithPollingInterval(200*time.Millisecond)))
			})
		}
		wg.Wait()
		for _, c := range cancels {
			c()
		}
		mu.Lock()
		defer mu.Unlock()
		for i, err := range errs {
			if err != nil {
				errs[i] = fmt.Errorf("tab %d: %w", i+1, err)
			}
		}
		if len(consoleErrs) > 0 {
			errs = append(errs, fmt.Errorf("console errors: %s", strings.Join(consoleErrs, "; ")))
		}
		return errors.Join(errs...)
	}
}

func (b *browser) stop() { b.cancel() }

// treeCPU is the CPU seconds of a process and its descendants still running
// (/proc).
func treeCPU(root int) float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := parentPID(pid); pp > 0 {
			children[pp] = append(children[pp], pid)
		}
	}
	total := 0.0
	for queue := []int{root}; len(queue) > 0; queue = queue[1:] {
		total += procCPU(queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return total
}

// parentPID is a process's parent (/proc/PID/stat), 0 when unknown.
func parentPID(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}
