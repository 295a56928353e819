package bench

// Dashboard tabs in a real browser: a headless Chromium, driven with chromedp
// as the dashboard's browser test drives it (coordinator/e2e/dashboard_test.go),
// opens the run page in every tab while the run goes. Each tab records the
// progress bar's values as the page's script sets them; at the end the tabs
// are read, so a figure with tabs that received nothing is refused
// (docs/benchmarks.md, "The dashboard").

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/coordinator/internal/webui"
	"github.com/nominacl/consolidation/pkg/localdb"
)

// BrowserChromium is -dashboard-browser's one browser.
const BrowserChromium = "chromium"

// tabHosts is the name every tab's host ends with: the browser resolves each
// tabN.dashboard.test to the loopback address. A browser keeps at most 6
// HTTP/1.1 connections to one host and each tab holds one open for its events;
// over plain HTTP (the dashboard behind a proxy that ends TLS) a host of its
// own per tab gives every tab its connections, as 20 people's browsers would.
// The first version of these tabs did the same. Over TLS (-dashboard-tls) the
// browser speaks HTTP/2 and every tab opens the same host, as one person's
// tabs do: one connection carries them all.
const tabHosts = ".dashboard.test"

// dashboardViewer is who the tabs are over TLS, where the dashboard shows
// nothing to a caller with no identity: the browser sends the header an
// authenticating proxy would (docs/security-model.md), which the benchmark's
// coordinator trusts from loopback, naming an identity its policy allows only
// to read, as the people who watch closings are.
const dashboardViewer = "panel@benchmark.test"

// dashboardViewerPolicy is the rule newDashboardTLS adds to the coordinator's
// policy for dashboardViewer: the dashboard's read methods.
const dashboardViewerPolicy = `  - identities: ["` + dashboardViewer + `"]
    methods:
      - consolidation.v1.ConsolidationService/ListConsolidations
      - consolidation.v1.ConsolidationService/GetConsolidation
      - consolidation.v1.ConsolidationService/WatchConsolidation
      - consolidation.v1.ConsolidationService/ExplainEmployee
`

// newDashboardTLS makes the cluster's certificates and policies in dir, the
// coordinator's policy allowing dashboardViewer to read.
func newDashboardTLS(dir string) (*launch.DevTLS, error) {
	d, err := launch.NewDevTLS(dir)
	if err != nil {
		return nil, err
	}
	return d, os.WriteFile(d.CoordinatorPolicy, []byte(launch.CoordinatorPolicy+dashboardViewerPolicy), 0o600)
}

// tlsHost is the one host of every tab over TLS: an address the dashboard's
// certificate names (Chromium refused the certificate for a name it does not
// hold, ignore-certificate-errors or not).
const tlsHost = "127.0.0.1"

// browser is one headless Chromium, started for one measured run.
type browser struct {
	ctx    context.Context // the browser's chromedp context; tabs are its children
	cancel func()
	pid    int
	tls    bool // the dashboard is served over TLS, by the benchmark's throwaway CA
}

// startBrowser starts a headless Chromium with no tab of the run open. With
// idle, every process of it runs under SCHED_IDLE (chrt --idle 0): it gets a
// core only when nothing else wants one, below even nice 19. With tls the
// dashboard's certificate, signed by the benchmark's throwaway CA, is accepted.
func startBrowser(ctx context.Context, idle, tls bool) (*browser, error) {
	path, err := localdb.Chromium()
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("host-resolver-rules", "MAP *"+tabHosts+" 127.0.0.1"), chromedp.Flag("ignore-certificate-errors", tls))
	if idle {
		chrt, err := exec.LookPath("chrt")
		if err != nil {
			return nil, fmt.Errorf("-dashboard-browser-idle needs chrt (util-linux): %w", err)
		}
		opts = append(opts, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// chrt sets the policy and execs Chromium in the same process, whose
			// children inherit it.
			cmd.Args = append([]string{chrt, "--idle", "0", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = chrt
			// What chromedp sets without a ModifyCmdFunc: the browser dies with
			// the benchmark.
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	b := &browser{ctx: bctx, cancel: func() { cancelBrowser(); cancelAlloc() }, tls: tls}
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		b.cancel()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	if c := chromedp.FromContext(bctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pid = c.Browser.Process().Pid
	}
	return b, nil
}

// cpu is the CPU seconds the browser's processes have used so far.
func (b *browser) cpu() float64 { return treeCPU(b.pid) }

func (b *browser) close() { b.cancel() }

// tabWatch is installed in every tab once its page has loaded: it records each
// value the page's script gives the progress bar (the first time it is seen)
// with the time, and tabRead reads it back with the bar's state.
const tabWatch = `(() => {
  const bar = document.getElementById("bar");
  const seen = window.__benchSeen = [];
  new MutationObserver(() => {
    const v = Number(bar.value);
    if (!seen.some((s) => s[1] === v)) seen.push([Date.now(), v]);
  }).observe(bar, { attributes: true, attributeFilter: ["value"] });
  return true;
})()`

// tabShown is what a tab shows, for an error: its address, title and the
// start of its text.
const tabShown = `location.href + " " + JSON.stringify(document.title) + " " +
  JSON.stringify((document.body ? document.body.innerText : "").slice(0, 200))`

const tabRead = `({ percent: Number(document.getElementById("bar").value),
  final: document.getElementById("progress").dataset.final === "1",
  seen: window.__benchSeen || [],
  protocol: performance.getEntriesByType("navigation")[0]?.nextHopProtocol || "" })`

// tabState is what tabRead returns: the bar's value, whether the page saw the
// run's end, the values it was given, each [unix ms, percent], and the
// protocol its page came over (h2, http/1.1).
type tabState struct {
	Percent  float64      `json:"percent"`
	Final    bool         `json:"final"`
	Seen     [][2]float64 `json:"seen"`
	Protocol string       `json:"protocol"`
}

// TabsSeen is what the browser's tabs showed of one run.
type TabsSeen struct {
	Tabs int
	// AtEnd counts the tabs whose bar read 100 % with the run's end shown.
	AtEnd int
	// LiveMin and LiveMedian are the fewest and the median, over the tabs, of
	// the progress values a tab was given before the run ended (its final
	// Watch message): the updates it received live.
	LiveMin, LiveMedian int
	// EndLag is the longest any tab took, after the run ended, to show 100 %.
	EndLag time.Duration
	// Protocols are the protocols the tabs' pages came over, each once, sorted
	// and joined by commas.
	Protocols string
}

// summarizeTabs reads the tabs' states against the run's end. The error says
// why the tabs do not count as watching: one never showed the end, or one
// received no progress while the run went.
func summarizeTabs(states []tabState, ended time.Time) (TabsSeen, error) {
	s := TabsSeen{Tabs: len(states)}
	end := float64(ended.UnixMilli())
	var live []int
	var errs []error
	var protocols []string
	for i, st := range states {
		if !slices.Contains(protocols, st.Protocol) {
			protocols = append(protocols, st.Protocol)
		}
		if st.Final && st.Percent == 100 {
			s.AtEnd++
		} else {
			errs = append(errs, fmt.Errorf("tab %d shows %.0f %% (end shown: %v)", i+1, st.Percent, st.Final))
		}
		n := 0
		for _, v := range st.Seen {
			if v[0] <= end {
				n++
			} else if v[1] == 100 {
				s.EndLag = max(s.EndLag, time.Duration(v[0]-end)*time.Millisecond)
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("tab %d received no progress while the run went", i+1))
		}
		live = append(live, n)
	}
	if len(live) > 0 {
		slices.Sort(live)
		s.LiveMin, s.LiveMedian = live[0], live[len(live)/2]
	}
	slices.Sort(protocols)
	s.Protocols = strings.Join(protocols, ",")
	return s, errors.Join(errs...)
}

// tabsEndGrace is how long the tabs may take, after the run's end, to show it.
const tabsEndGrace = 60 * time.Second

// openTabs opens n tabs of the browser on a run's page, each loading it as a
// person does, and returns the func that waits until every tab shows the end
// of the run (ended is when the run's final message arrived), reads the tabs
// and closes them.
func (b *browser) openTabs(ctx context.Context, addr string, n int, runID int64) func(ended time.Time) (TabsSeen, error) {
	_, port, _ := net.SplitHostPort(addr)
	tabs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var consoleErrs []string
	for i := range n {
		tabs[i], cancels[i] = chromedp.NewContext(b.ctx)
		page := fmt.Sprintf("http://tab%d%s:%s/ui/runs/%d", i+1, tabHosts, port, runID)
		if b.tls {
			page = fmt.Sprintf("https://%s:%s/ui/runs/%d", tlsHost, port, runID)
		}
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
		wg.Go(func() {
			// The tab's first action gets no deadline: the context of a tab's
			// first action is its lifetime, and the tab would close with it.
			if errs[i] = chromedp.Do(tabs[i]); errs[i] != nil {
				return
			}
			if b.tls {
				if _, errs[i] = chromedp.Call(tabs[i], network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
					Headers: network.Headers{webui.DefaultProxyHeader: dashboardViewer}}); errs[i] != nil {
					return
				}
			}
			octx, cancel := context.WithTimeout(tabs[i], 2*time.Minute)
			defer cancel()
			if errs[i] = chromedp.Do(octx, chromedp.Navigate(page)); errs[i] == nil {
				if _, errs[i] = chromedp.Run(octx, chromedp.Evaluate[bool](tabWatch)); errs[i] != nil {
					// Not the run's page: say which page it was.
					shown, _ := chromedp.Run(octx, chromedp.Evaluate[string](tabShown))
					errs[i] = fmt.Errorf("tab %d on %s: %w (the page: %s)", i+1, page, errs[i], shown)
				}
			}
		})
	}
	opened := make(chan struct{})
	go func() { wg.Wait(); close(opened) }()
	return func(ended time.Time) (TabsSeen, error) {
		defer func() {
			for _, c := range cancels {
				c()
			}
		}()
		select {
		case <-opened:
		case <-ctx.Done():
			return TabsSeen{}, ctx.Err()
		}
		if err := errors.Join(errs...); err != nil {
			return TabsSeen{}, fmt.Errorf("opening the tabs: %w", err)
		}
		states := make([]tabState, n)
		deadline := time.Now().Add(tabsEndGrace)
		for i := range n {
			wg.Go(func() {
				wctx, cancel := context.WithDeadline(tabs[i], deadline)
				defer cancel()
				// Waited for, not required: a tab that never shows the end is
				// read as it is and refused by summarizeTabs.
				_, _ = chromedp.Run(wctx, chromedp.Poll[bool](`document.getElementById("progress").dataset.final === "1"`,
					chromedp.WithPollingInterval(100*time.Millisecond)))
				rctx, cancel := context.WithTimeout(tabs[i], 10*time.Second)
				defer cancel()
				states[i], errs[i] = chromedp.Run(rctx, chromedp.Evaluate[tabState](tabRead))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return TabsSeen{}, fmt.Errorf("reading the tabs: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(consoleErrs) > 0 {
			return TabsSeen{}, fmt.Errorf("console errors: %s", strings.Join(consoleErrs, "; "))
		}
		seen, err := summarizeTabs(states, ended)
		if err == nil && b.tls && seen.Protocols != "h2" {
			// What -dashboard-tls measures is the tabs sharing one HTTP/2
			// connection; over anything else the figure would be another's.
			err = fmt.Errorf("over TLS the tabs' pages came over %q, not only h2", seen.Protocols)
		}
		return seen, err
	}
}
