package e2e_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/localdb"
)

// The dashboard's identities: the proxy passes an operator, allowed every
// method, and an analyst, allowed only to read.
const (
	uiOperator = "operaciones@nomina.cl"
	uiAnalyst  = "analista@nomina.cl"
)

const dashboardPolicy = launch.CoordinatorPolicy + `  - identities: ["` + uiOperator + `"]
    methods: ["consolidation.v1.ConsolidationService/*"]
  - identities: ["` + uiAnalyst + `"]
    methods:
      - consolidation.v1.ConsolidationService/ListConsolidations
      - consolidation.v1.ConsolidationService/GetConsolidation
      - consolidation.v1.ConsolidationService/WatchConsolidation
      - consolidation.v1.ConsolidationService/ExplainEmployee
`

// The two viewports every page is captured at.
var viewports = []struct {
	name string
	w, h int64
}{{"laptop", 1366, 850}, {"phone", 390, 844}}

// TestDashboard drives the dashboard in a real headless Chromium against a
// cluster on mTLS, behind a stand-in for the authenticating proxy (the browser
// sends the header the proxy would; the coordinator trusts it from loopback):
// the operator starts a closing with a poison employee, watches the progress bar
// move and reach 100 % without a reload, opens the failed employee's
// explanation, retries the failed employee and cancels another run; the
// analyst sees no action and is refused one posted anyway; a caller with no
// identity sees nothing. Any console message of level error fails the test.
// Screenshots of every page at two sizes go to $DASHBOARD_SCREENSHOTS (docs/
// dashboard keeps the current ones), else to a temporary directory.
func TestDashboard(t *testing.T) {
	t.Parallel()
	chromium, err := localdb.Chromium()
	require.NoError(t, err)
	devTLS, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(devTLS.CoordinatorPolicy, []byte(dashboardPolicy), 0o600))
	uiAddr := freeAddr(t)
	// Every chunk holds a moment before its commit, so progress is seen moving
	// and a run is still running when it is cancelled.
	c := newCluster(t, clusterOptions{workers: 2, tls: devTLS,
		coordEnv:  []string{"UI_ADDR=" + uiAddr, "UI_TRUSTED_PROXIES=127.0.0.1,::1"},
		workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=*=700ms"}})
	closing := c.generate(300, 231)
	bad := c.overflow(closing, 200)
	slow := c.generate(400, 232)
	base := "https://" + uiAddr

	shots := os.Getenv("DASHBOARD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("lang", "es-CL"))...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	require.NoError(t, chromedp.Do(browser)) // starts the browser

	// tab opens a tab whose requests carry identity in the proxy's header, and
	// fails the test on any console error the tab logs.
	tab := func(identity string) context.Context {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		messages := chromedp.Console(ctx)
		var mu sync.Mutex
		var errs []string
		go func() {
			for m, err := range messages {
				if err != nil {
					return
				}
				if m.Type == chromedp.ConsoleError || m.IsException() {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line))
					mu.Unlock()
				}
			}
		}()
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			require.Empty(t, errs, "console errors of %s's tab", identity)
		})
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"X-Auth-Request-Email": identity}})
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(viewports[0].w, viewports[0].h)))
		return ctx
	}
	do := func(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		require.NoError(t, chromedp.Do(wctx, steps...))
	}
	// clickNav clicks what navigates (a link, a form's button) and waits for the
	// next page to load.
	clickNav := func(ctx context.Context, sel string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		loads := chromedp.Events(wctx, page.LoadEventFired)
		require.NoError(t, chromedp.Do(wctx, chromedp.Click(chromedp.CSS(sel))))
		for _, err := range loads {
			require.NoError(t, err, "waiting for the page %s leads to", sel)
			return
		}
	}
	// poll waits until the expression is true in the page.
	poll := func(ctx context.Context, expr string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := chromedp.Run(wctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond)))
		require.NoError(t, err, "waiting for %s", expr)
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		require.NoError(t, err)
		return s
	}
	eval := func(ctx context.Context, js string) float64 {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](js))
		require.NoError(t, err)
		return v
	}
	// capture saves the page at both viewports, light, and the laptop one dark.
	capture := func(ctx context.Context, name string) {
		t.Helper()
		for _, vp := range viewports {
			do(ctx, chromedp.EmulateViewport(vp.w, vp.h))
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(shots, name+"-"+vp.name+".png"), png, 0o644))
		}
		do(ctx, chromedp.EmulateViewport(viewports[0].w, viewports[0].h))
	}

	operator := tab(uiOperator)

	// The operator starts a closing and watches it end, without a reload.
	{
		do(operator, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#start")))
		// Over HTTP/2: the browser's tabs share one connection, where HTTP/1.1
		// would give each run tab's events one of six.
		require.Equal(t, "h2", mustRun(t, operator, chromedp.Evaluate[string](
			`performance.getEntriesByType("navigation")[0].nextHopProtocol`)))
		// Keyboard: the first Tab reaches the skip link, and a few more the form.
		do(operator, chromedp.KeyEvent(kb.Tab))
		require.Equal(t, "Ir al contenido", mustRun(t, operator, chromedp.Evaluate[string](`document.activeElement.textContent`)))
		reached := false
		for range 8 {
			do(operator, chromedp.KeyEvent(kb.Tab))
			if mustRun(t, operator, chromedp.Evaluate[bool](`document.activeElement === document.querySelector("#start summary")`)) {
				reached = true
				break
			}
		}
		require.True(t, reached, "the start form is not reached with Tab")
		do(operator, chromedp.Click(chromedp.CSS("#start summary")),
			chromedp.SetValue(chromedp.CSS(`input[name="closing_id"]`), fmt.Sprint(closing)),
			chromedp.SetValue(chromedp.CSS(`input[name="chunk_size"]`), "50"),
		)
		clickNav(operator, `#start button[type="submit"]`)
		// A mark the page keeps until it is reloaded; and the progress card's
		// height, which must not change while progress moves.
		eval(operator, `window.__notReloaded = 1; document.getElementById("progress").getBoundingClientRect().height`)
		height := eval(operator, `document.getElementById("progress").getBoundingClientRect().height`)

		// The bar is seen between its ends, then at 100 %, on the same page.
		poll(operator, `(() => { const v = document.getElementById("bar").value; return v > 0 && v < 100 })()`)
		capture(operator, "run-running")
		poll(operator, `document.getElementById("bar").value === 100 && document.getElementById("progress").dataset.final === "1"`)
		require.Equal(t, 1.0, eval(operator, `window.__notReloaded || 0`), "the page was reloaded")
		require.Equal(t, height, eval(operator, `document.getElementById("progress").getBoundingClientRect().height`),
			"the progress card changed height")
		require.Equal(t, "Consolidación parcial", strings.TrimSpace(text(operator, "#estado")))
		require.Equal(t, "100,0 %", strings.TrimSpace(text(operator, "#percent")))
		require.Contains(t, text(operator, "#employees"), "299 de 300")
		// The details came with the end: the failed employee, the metrics row,
		// control totals in pesos, the retry button.
		do(operator, chromedp.WaitVisible(chromedp.CSS("a.explain")), chromedp.WaitVisible(chromedp.CSS("#retry")))
		require.Equal(t, fmt.Sprint(bad), strings.TrimSpace(text(operator, "a.explain")))
		require.Contains(t, text(operator, "#details"), "Métricas")
		require.Regexp(t, `\$ \d{1,3}(\.\d{3})+`, text(operator, "#details"))
		require.Equal(t, 1.0, eval(operator, `document.querySelectorAll(".chunk-map .cell.half.failed").length`),
			"the poison employee's chunk of one, a half of a split")
		capture(operator, "run")
	}

	// The failed employee's explanation.
	{
		clickNav(operator, "a.explain")
		require.Contains(t, text(operator, "#refusal"), "does not fit")
		concepts := text(operator, "table.concepts")
		require.Contains(t, concepts, "SB")
		require.Contains(t, concepts, "$ 9.999.999.999,99", "the libro's value, in pesos")
		capture(operator, "explain")
		do(operator, chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS("#retry")))
	}

	// The operator retries the failed employee, fixed.
	{
		c.fix(bad)
		clickNav(operator, "#retry")
		poll(operator, `document.getElementById("estado").textContent === "Datos consolidados"`)
		require.Contains(t, text(operator, "main"), "reintento de fallidos")
		require.Equal(t, domain.EstadoConsolidados, c.estado(closing))
	}

	// The operator cancels a run.
	{
		do(operator, chromedp.Navigate(base+"/ui/"), chromedp.Click(chromedp.CSS("#start summary")),
			chromedp.SetValue(chromedp.CSS(`input[name="closing_id"]`), fmt.Sprint(slow)),
			chromedp.SetValue(chromedp.CSS(`input[name="chunk_size"]`), "10"),
		)
		clickNav(operator, `#start button[type="submit"]`)
		do(operator, chromedp.WaitVisible(chromedp.CSS("#cancel")), chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("tr.running")))
		capture(operator, "runs")
		clickNav(operator, "tr.running a")
		clickNav(operator, "#cancel")
		poll(operator, `document.getElementById("estado").textContent === "Consolidación cancelada"`)
		require.Contains(t, text(operator, "#cancelled-by"), uiOperator)
		require.Equal(t, domain.EstadoCancelada, c.estado(slow))
	}

	// Workers and throughput; dark mode.
	{
		do(operator, chromedp.Navigate(base+"/ui/workers"), chromedp.WaitVisible(chromedp.CSS("table")))
		workers := text(operator, "main")
		require.Equal(t, 2, strings.Count(workers, "sano"), workers)
		require.True(t, mustRun(t, operator, chromedp.Evaluate[bool](`[...document.querySelector("main table").tBodies[0].rows]
			.every(tr => Number(tr.cells[3].textContent.replace(/\./g, "")) > 0)`)), "each worker wrote chunks: %s", workers)
		capture(operator, "workers")
		do(operator, chromedp.Navigate(base+"/ui/throughput"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
		require.Greater(t, eval(operator, `document.querySelectorAll("svg.chart polygon").length`), 0.0)
		capture(operator, "throughput")
		// Dark mode follows the system setting.
		_, err := chromedp.Call(operator, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		require.NoError(t, err)
		do(operator, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("table")))
		require.Equal(t, "rgb(15, 18, 22)", strings.Trim(mustRun(t, operator, chromedp.Evaluate[string](
			`getComputedStyle(document.body).backgroundColor`)), " "))
		capture(operator, "runs-dark")
	}

	// The analyst sees no action.
	{
		analyst := tab(uiAnalyst)
		do(analyst, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("table.runs")))
		require.Contains(t, text(analyst, "#who"), "solo lectura")
		require.Zero(t, eval(analyst, `document.querySelectorAll("form[method=post]").length`))
		require.Equal(t, 3.0, eval(analyst, `document.querySelectorAll("table.runs tbody tr").length`))
		do(analyst, chromedp.Navigate(base+"/ui/?estado=consolidacion_cancelada&ventana=1h"), chromedp.WaitVisible(chromedp.CSS("table.runs")))
		require.Equal(t, 1.0, eval(analyst, `document.querySelectorAll("table.runs tbody tr").length`), "filtered by estado")
		require.Contains(t, text(analyst, "table.runs tbody"), "Consolidación cancelada")
		do(analyst, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("table.runs")))
		clickNav(analyst, "table.runs tbody a")
		require.Zero(t, eval(analyst, `document.querySelectorAll("form[method=post], #cancel, #retry").length`))
	}

	// Actions posted anyway are refused.
	{
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // the dev CA's server
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		post := func(identity, origin string, withToken bool) (int, string) {
			form := url.Values{"closing_id": {fmt.Sprint(slow)}, "force": {"on"}}
			if withToken {
				form.Set("csrf", strings.Repeat("t", 43))
			}
			req, err := http.NewRequest(http.MethodPost, base+"/ui/actions/start", strings.NewReader(form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", origin)
			req.Header.Set("X-Auth-Request-Email", identity)
			req.AddCookie(&http.Cookie{Name: "ui_csrf", Value: strings.Repeat("t", 43)})
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		code, body := post(uiAnalyst, base, true)
		require.Equal(t, http.StatusForbidden, code)
		require.Contains(t, body, "no tiene permiso")
		code, _ = post(uiOperator, "https://elsewhere.example", true)
		require.Equal(t, http.StatusForbidden, code, "a cross-origin post")
		code, body = post(uiOperator, base, false)
		require.Equal(t, http.StatusForbidden, code, "a post without the token")
		require.Contains(t, body, "token")
		code, _ = post("", base, true)
		require.Equal(t, http.StatusForbidden, code, "no identity")
		require.Equal(t, domain.EstadoCancelada, c.estado(slow), "nothing was started")

		// Without an identity the dashboard shows nothing on mTLS.
		resp, err := client.Get(base + "/ui/")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
}

func mustRun[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}
