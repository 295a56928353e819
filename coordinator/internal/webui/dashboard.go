// Package webui is the coordinator's dashboard: server-rendered pages of the
// runs, one run (its progress live, over server-sent events from the engine's
// watch hub), the workers and the throughput, and the actions start, cancel and
// retry-failed for those whose identity the authorization policy allows them.
// Everything it serves is embedded in the binary; it reads and acts through the
// engine, as the gRPC handlers do (README "Dashboard").
package webui

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

// DefaultProxyHeader is Config.ProxyHeader's default: the header oauth2-proxy
// sets to the signed-in user's e-mail.
const DefaultProxyHeader = "X-Auth-Request-Email"

// Config configures a Dashboard.
type Config struct {
	// Authorization is the gRPC server's policy: a page or an action is allowed
	// to an identity exactly when the matching ConsolidationService method is.
	// Required.
	Authorization *grpcx.Authorization
	// ProxyHeader names the header in which a trusted authenticating proxy
	// passes the signed-in user (default: DefaultProxyHeader,
	// X-Auth-Request-Email).
	ProxyHeader string
	// TrustedProxies are the addresses the ProxyHeader is believed from; from
	// anywhere else it is ignored (default: none, so only client certificates
	// identify).
	TrustedProxies []netip.Prefix
	// PageSize is the runs listed per page (default: 25).
	PageSize int
	// LiveEvery is how often the runs page refreshes its running runs and the
	// workers page its workers (default: 2s).
	LiveEvery time.Duration
}

// workerStates is what the dashboard reads of the dispatcher.
type workerStates interface {
	Workers() []dispatch.WorkerState
}

// Dashboard serves the dashboard's pages under /ui/.
type Dashboard struct {
	logger  *slog.Logger
	cfg     Config
	engine  *engine.Engine
	workers workerStates
	pages   map[string]*template.Template
	mux     *http.ServeMux
	views   *runViewCache
	streams runStreams
	// watchRun and buildRunView are the engine's watch of a run and the run
	// page's view of it, as the event streams read them.
	watchRun     func(ctx context.Context, runID int64, send func(progress.Snapshot, *engine.Report) error) error
	buildRunView func(ctx context.Context, runID int64) (runView, error)
	writeWait    time.Duration // the longest write of events to one tab
	// base is the context of the runs' event writers: they end with it (Serve
	// sets the server's).
	base context.Context
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// NewDashboard builds the dashboard over the engine and the dispatcher.
func NewDashboard(logger *slog.Logger, cfg Config, e *engine.Engine, workers workerStates) (*Dashboard, error) {
	cfg.ProxyHeader = cmp.Or(cfg.ProxyHeader, DefaultProxyHeader)
	cfg.PageSize = cmp.Or(cfg.PageSize, 25)
	cfg.LiveEvery = cmp.Or(cfg.LiveEvery, 2*time.Second)
	if cfg.Authorization == nil || e == nil || workers == nil {
		return nil, errors.New("the dashboard needs the authorization policy, the engine and the dispatcher")
	}
	d := &Dashboard{logger: logger, cfg: cfg, engine: e, workers: workers, pages: map[string]*template.Template{},
		views: newRunViewCache(time.Second), streams: runStreams{runs: map[int64]*runStream{}}, writeWait: writeWait, base: context.Background()}
	d.watchRun = func(ctx context.Context, runID int64, send func(progress.Snapshot, *engine.Report) error) error {
		return e.Watch(ctx, engine.Ref{RunID: runID}, send)
	}
	d.buildRunView = d.runView
	for _, name := range []string{"runs", "run", "explain", "workers", "throughput", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing the dashboard's %s page: %w", name, err)
		}
		for _, entry := range append([]string{"layout"}, entryPoints[name]...) {
			if err := escapeNow(t, entry); err != nil {
				return nil, fmt.Errorf("escaping the dashboard's %s page (%s): %w", name, entry, err)
			}
		}
		d.pages[name] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticHandler(http.FileServerFS(static))))
	m.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	m.HandleFunc("GET /ui/{$}", d.runsPage)
	m.HandleFunc("GET /ui/runs/rows", d.runsRows)
	m.HandleFunc("GET /ui/runs/{id}", d.runPage)
	m.HandleFunc("GET /ui/runs/{id}/events", d.runEvents)
	m.HandleFunc("GET /ui/closings/{closing}/employees/{employee}", d.explainPage)
	m.HandleFunc("GET /ui/workers", d.workersPage)
	m.HandleFunc("GET /ui/throughput", d.throughputPage)
	// Mutations: refused cross-origin (Sec-Fetch-Site, Origin), then the form's
	// token must match the caller's cookie (actions.go).
	cop := http.NewCrossOriginProtection()
	m.Handle("POST /ui/actions/start", cop.Handler(http.HandlerFunc(d.startAction)))
	m.Handle("POST /ui/runs/{id}/cancel", cop.Handler(http.HandlerFunc(d.cancelAction)))
	m.Handle("POST /ui/runs/{id}/retry", cop.Handler(http.HandlerFunc(d.retryAction)))
	d.mux = m
	return d, nil
}

// ServeHTTP serves the dashboard, with headers that keep its pages from being
// framed, sniffed or given scripts and styles from anywhere else.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	d.mux.ServeHTTP(w, r)
}

// staticTypes are the content types of the embedded assets. Set before the file
// server answers, they keep it from loading the system's whole MIME table
// (/etc/mime.types: about 1.5 MB of the coordinator's heap, kept for its life,
// for two file types; docs/benchmarks.md, "The dashboard").
var staticTypes = map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

// staticHandler lets browsers keep the embedded assets for an hour; a page's
// assets are fetched with it, and its connection is not kept after.
func staticHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		closeAfter(w, r)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if t, ok := staticTypes[path.Ext(r.URL.Path)]; ok {
			w.Header().Set("Content-Type", t)
		}
		next.ServeHTTP(w, r)
	})
}

// entryPoints are the templates a page's code executes by name besides
// "layout"; the others are only called from these.
var entryPoints = map[string][]string{"run": {"details", "summary"}, "runs": {"rows"}}

// escapeNow has html/template escape a page's entry template, as its first
// execution would: a template that cannot be escaped stops the coordinator at
// its start rather than failing a page, and every page's escaped templates are
// in the heap from the start, not added by the first person to open the
// dashboard (docs/benchmarks.md, "The dashboard"). Escaping comes before
// executing, so executing without data, which fails, escapes all the same.
func escapeNow(t *template.Template, entry string) error {
	if t.Lookup(entry) == nil {
		return fmt.Errorf("no template %q", entry)
	}
	err := t.ExecuteTemplate(io.Discard, entry, nil)
	if escErr := (*template.Error)(nil); errors.As(err, &escErr) {
		return err
	}
	return nil
}
