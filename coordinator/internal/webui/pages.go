package webui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// pageData is what every page's layout reads.
type pageData struct {
	Title  string
	Nav    string // the section highlighted: runs, workers, throughput
	Caller caller
	CSRF   string // the form token, when the caller may post anything
	// LiveMs is how often live parts refresh, in milliseconds.
	LiveMs int64
	View   any
}

var funcs = template.FuncMap{
	"pesos": pesos, "percent": percent, "duration": duration, "timestamp": timestamp,
	"estadoLabel": estadoLabel, "estadoTone": estadoTone, "modeLabel": modeLabel,
	"count":   func(n int) string { return count(n) },
	"count64": func(n int64) string { return count(n) },
	"decimal": decimal,
	"seconds": func(s float64) string { return duration(seconds(s)) },
}

// render writes a page (tmpl "layout") or a fragment of it (another template
// name) with status; the page is rendered into a buffer first, so a template
// error is a 500, never half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, page, tmpl string, status int, p pageData) {
	d.renderShared(w, r, page, tmpl, status, p, nil)
}

// sharedMark stands for the shared HTML in a rendered page: an HTML comment
// no data can produce (html/template escapes every "<" of data, and drops the
// comments of template text).
const sharedMark = "<!--shared-->"

// maxPooledBuf is the largest render buffer kept for the next response.
const maxPooledBuf = 64 << 10

var renderBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// renderShared renders as render does, where the template writes sharedMark
// once, and writes shared in its place: HTML rendered already and shared by
// many responses (a run's details, the same for all its tabs), written as it is
// rather than copied into each response's buffer. Twenty tabs opening one run's
// page at once would otherwise each copy the whole chunk map
// (docs/benchmarks.md, "The dashboard").
func (d *Dashboard) renderShared(w http.ResponseWriter, r *http.Request, page, tmpl string, status int, p pageData, shared []byte) {
	p = d.forCaller(w, r, p)
	buf := renderBufs.Get().(*bytes.Buffer)
	defer putRenderBuf(buf)
	before, after, err := d.execute(buf, page, tmpl, p, shared != nil)
	if err != nil {
		d.logger.ErrorContext(r.Context(), "dashboard page not rendered", "page", page, "error", err.Error())
		http.Error(w, "error interno; vea el log del coordinador", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if _, err := w.Write(before); err != nil || shared == nil {
		return
	}
	if _, err := w.Write(shared); err != nil {
		return
	}
	_, _ = w.Write(after)
}

// forCaller fills in what p says of the caller: who it is, its form token when
// it may post anything, and how often live parts refresh.
func (d *Dashboard) forCaller(w http.ResponseWriter, r *http.Request, p pageData) pageData {
	p.Caller = d.callerOf(r)
	if p.Caller.CanStart || p.Caller.CanCancel {
		p.CSRF = csrfToken(w, r)
	}
	p.LiveMs = d.cfg.LiveEvery.Milliseconds()
	return p
}

// execute renders tmpl of page into buf, so that a template error is an error
// and never half a page; with shared, it cuts the result where the template
// wrote sharedMark, which it must have written.
func (d *Dashboard) execute(buf *bytes.Buffer, page, tmpl string, p pageData, shared bool) (before, after []byte, err error) {
	if err := d.pages[page].ExecuteTemplate(buf, tmpl, p); err != nil {
		return nil, nil, err
	}
	before = buf.Bytes()
	if shared {
		var found bool
		if before, after, found = bytes.Cut(before, []byte(sharedMark)); !found {
			return nil, nil, fmt.Errorf("template %s of page %s has no place for the shared details", tmpl, page)
		}
	}
	return before, after, nil
}

func putRenderBuf(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuf {
		buf.Reset()
		renderBufs.Put(buf)
	}
}

// message is a page that only says something: a refusal, an error.
func (d *Dashboard) message(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	d.render(w, r, "message", "layout", status, pageData{Title: title, View: text})
}

// engineError answers an engine error as its gRPC code would: the message of an
// engine.Error (it names ids and states, never personal data or SQL), a bare
// 500 for anything else.
func (d *Dashboard) engineError(w http.ResponseWriter, r *http.Request, err error) {
	var ee *engine.Error
	if !errors.As(err, &ee) {
		if r.Context().Err() == nil {
			d.logger.ErrorContext(r.Context(), "dashboard request failed", "error", err.Error())
		}
		d.message(w, r, http.StatusInternalServerError, "Error interno", "Vea el log del coordinador.")
		return
	}
	status := map[engine.Kind]int{engine.KindInvalidArgument: http.StatusBadRequest, engine.KindNotFound: http.StatusNotFound,
		engine.KindFailedPrecondition: http.StatusConflict, engine.KindAlreadyExists: http.StatusConflict,
		engine.KindUnavailable: http.StatusServiceUnavailable}[ee.Kind]
	d.message(w, r, cmpOr(status, http.StatusInternalServerError), "No se pudo", ee.Msg)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// allowRead writes the refusal of a page the caller may not see; false then.
func (d *Dashboard) allowRead(w http.ResponseWriter, r *http.Request, method string) bool {
	c := d.callerOf(r)
	if d.mayRead(c, method) {
		return true
	}
	if c.Identity == "" {
		d.message(w, r, http.StatusUnauthorized, "Identifíquese",
			"Este panel muestra datos solo a quien se identifica con un certificado de cliente o a través del proxy de autenticación.")
	} else {
		d.message(w, r, http.StatusForbidden, "Sin permiso", c.Identity+" no tiene permiso para ver esta página.")
	}
	return false
}

func (d *Dashboard) pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		d.message(w, r, http.StatusNotFound, "No existe", "La dirección no nombra un número válido.")
		return 0, false
	}
	return id, true
}

// ---- Runs

type option struct {
	Value, Label string
	Selected     bool
}

// windows are the runs page's time windows.
var windows = []struct {
	value string
	span  time.Duration
	label string
}{{"", 0, "Todo"}, {"1h", time.Hour, "Última hora"}, {"24h", 24 * time.Hour, "Últimas 24 horas"},
	{"7d", 7 * 24 * time.Hour, "Últimos 7 días"}, {"30d", 30 * 24 * time.Hour, "Últimos 30 días"}}

type runsView struct {
	Estados, Windows []option
	Closing          string
	Rows             []runRow
	Next, First      string // the next page's URL ("" on the last); the first page's
	LiveQuery        string // this page's query, for refreshing its rows
	Paged            bool   // this is not the first page
	Live             bool   // a listed run is running
	Err              string
}

type runRow struct {
	ID, ClosingID                  int64
	Estado                         domain.Estado
	Mode, Done, Total, Started     string
	Duration, RequestedBy, Percent string
	Running                        bool
}

func (d *Dashboard) runsPage(w http.ResponseWriter, r *http.Request) {
	if d.allowRead(w, r, methodList) {
		v, status := d.runsView(r)
		d.render(w, r, "runs", "layout", status, pageData{Title: "Consolidaciones", Nav: "runs", View: v})
	}
}

// runsRows is the runs table's body alone, which the page fetches again while a
// listed run is running.
func (d *Dashboard) runsRows(w http.ResponseWriter, r *http.Request) {
	if d.allowRead(w, r, methodList) {
		v, status := d.runsView(r)
		d.render(w, r, "runs", "rows", status, pageData{View: v})
	}
}

func (d *Dashboard) runsView(r *http.Request) (runsView, int) {
	q := r.URL.Query()
	var v runsView
	f := store.RunFilter{Estado: domain.Estado(q.Get("estado"))}
	v.Estados = append(v.Estados, option{Value: "", Label: "Todos", Selected: f.Estado == ""})
	for _, e := range runEstados {
		v.Estados = append(v.Estados, option{Value: string(e), Label: estadoLabel(e), Selected: e == f.Estado})
	}
	now := time.Now()
	for _, win := range windows {
		sel := q.Get("ventana") == win.value
		v.Windows = append(v.Windows, option{Value: win.value, Label: win.label, Selected: sel})
		if sel && win.span > 0 {
			f.StartedAfter = now.Add(-win.span)
		}
	}
	if s := q.Get("cierre"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			v.Err = "El cierre debe ser un número positivo."
			return v, http.StatusBadRequest
		}
		f.ClosingID, v.Closing = id, s
	}
	filters := url.Values{}
	for _, k := range []string{"estado", "cierre", "ventana"} {
		if q.Get(k) != "" {
			filters.Set(k, q.Get(k))
		}
	}
	v.First = "/ui/?" + filters.Encode()
	v.LiveQuery = r.URL.RawQuery
	// A window moves with the clock, so its page token would not match the next
	// request's filter: the window's start is carried with the token.
	if t, err := time.Parse(time.RFC3339Nano, q.Get("desde")); err == nil && q.Get("pagina") != "" {
		f.StartedAfter = t
	}
	runs, next, err := d.engine.List(r.Context(), engine.ListRequest{Filter: f, PageSize: d.cfg.PageSize, PageToken: q.Get("pagina")})
	var ee *engine.Error
	if errors.As(err, &ee) {
		v.Err = ee.Msg
		return v, http.StatusBadRequest
	}
	if err != nil {
		d.logger.ErrorContext(r.Context(), "dashboard list failed", "error", err.Error())
		v.Err = "No se pudo leer el historial; vea el log del coordinador."
		return v, http.StatusInternalServerError
	}
	v.Paged = q.Get("pagina") != ""
	if next != "" {
		nq := url.Values{}
		for k, vs := range filters {
			nq[k] = vs
		}
		nq.Set("pagina", next)
		if !f.StartedAfter.IsZero() {
			nq.Set("desde", f.StartedAfter.Format(time.RFC3339Nano))
		}
		v.Next = "/ui/?" + nq.Encode()
	}
	for _, run := range runs {
		row := runRow{ID: run.ID, ClosingID: run.ClosingID, Estado: run.Estado, Mode: modeLabel(run.Mode),
			Done: count(run.EmployeesDone), Total: count(run.TotalEmployees), Started: timestamp(run.StartedAt),
			RequestedBy: run.RequestedBy, Running: !run.Finished()}
		end := run.FinishedAt
		if row.Running {
			end = now
			v.Live = true
		}
		row.Duration = duration(end.Sub(run.StartedAt))
		if run.TotalEmployees > 0 {
			row.Percent = percent(100 * float64(run.EmployeesDone) / float64(run.TotalEmployees))
		}
		v.Rows = append(v.Rows, row)
	}
	return v, http.StatusOK
}

// ---- One run

type runView struct {
	Run             store.Run
	Progress        progressEvent
	Chunks          chunkMap
	Chart           template.HTML
	FailedChunks    []store.Chunk
	FailedEmployees []store.FailedEmployee
	MoreFailed      int // failed employees not listed
	Metrics         *store.Metrics
	TraceID         string
	Running         bool
	CanRetry        bool // a partial run whose failed employees may be retried
	// Summary is where the template writes the details that do not depend on
	// the caller: sharedMark, for which the response gets summary, rendered
	// once with this view and shared by every tab of the run.
	Summary template.HTML
	summary []byte
}

// runPage is the run page. The details below its progress bar come again over
// its event stream as chunks end and when the run ends (events.go).
func (d *Dashboard) runPage(w http.ResponseWriter, r *http.Request) {
	runID, ok := d.pathID(w, r, "id")
	if !ok || !d.allowRead(w, r, methodGet) {
		return
	}
	v, err := d.views.get(r.Context(), runID, false, func(ctx context.Context) (runView, error) { return d.runView(ctx, runID) })
	if err != nil {
		d.engineError(w, r, err)
		return
	}
	closeAfter(w, r)
	d.renderShared(w, r, "run", "layout", http.StatusOK, d.runPageData(v), v.summary)
}

// closeAfter closes an HTTP/1.x connection once its response is sent: the run
// page's tab asks nothing more on it while it watches (its event stream opens a
// connection of its own), and an idle connection kept would hold a goroutine
// and buffers for the server's IdleTimeout (docs/benchmarks.md, "The
// dashboard"). Said in the response, so a client or proxy never sends on it
// again; HTTP/2 connections, shared by every tab, are kept.
func closeAfter(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// runPageData is what the run page's templates read of v; its Summary is the
// mark the shared details are written for.
func (d *Dashboard) runPageData(v runView) pageData {
	v.Summary = sharedMark
	return pageData{Title: "Consolidación " + strconv.FormatInt(v.Run.ID, 10), Nav: "runs", View: v}
}

// runView reads and builds what the run page shows of a run.
func (d *Dashboard) runView(ctx context.Context, runID int64) (runView, error) {
	rep, err := d.engine.Get(ctx, engine.Ref{RunID: runID})
	if err != nil {
		return runView{}, err
	}
	cells, err := d.engine.ChunkMap(ctx, runID)
	if err != nil {
		return runView{}, err
	}
	now := time.Now()
	end := rep.Run.FinishedAt
	if end.IsZero() {
		end = now
	}
	v := runView{Run: rep.Run, Progress: newProgressEvent(rep.Progress, nil, rep.Run), Chunks: buildChunkMap(cells, now),
		FailedChunks: rep.FailedChunks, FailedEmployees: rep.FailedEmployees, Metrics: rep.Metrics,
		Running: !rep.Run.Finished(), CanRetry: rep.Run.Estado == domain.EstadoParcial}
	v.MoreFailed = rep.Run.EmployeesFailed - len(rep.FailedEmployees)
	v.Chart = runSeries(cells, rep.Run.StartedAt, end).svg("Empleados por segundo durante la consolidación")
	tp, err := d.engine.Traceparent(ctx, runID)
	if err != nil {
		return runView{}, err
	}
	v.TraceID = traceID(tp)
	// The details below the actions are the same for every caller: rendered
	// here, once per build, not once per tab (docs/benchmarks.md, "The
	// dashboard").
	// Sized for the chunk map at once (about 110 bytes a cell) rather than
	// grown by doubling: a large run's details are rendered every second while
	// tabs watch it.
	buf := bytes.NewBuffer(make([]byte, 0, 16<<10+128*len(cells)))
	if err := d.pages["run"].ExecuteTemplate(buf, "summary", pageData{View: v}); err != nil {
		return runView{}, fmt.Errorf("rendering the details of consolidation %d: %w", runID, err)
	}
	v.summary = buf.Bytes()
	// The view keeps only what the caller's part of the page reads; the rest is
	// in summary now. A view is held by the cache and by each tab's request
	// while it is served: the chunk map's cells, kept beside their rendering,
	// were the largest part of the coordinator's extra heap with 20 tabs
	// (docs/benchmarks.md, "The dashboard").
	v.Chunks, v.Chart, v.FailedChunks, v.FailedEmployees, v.Metrics = chunkMap{}, "", nil, nil, nil
	return v, nil
}

// progressEvent is a run's progress as the page shows it, and as each
// server-sent event carries it.
type progressEvent struct {
	Percent     float64 `json:"percent"`
	PercentText string  `json:"percent_text"`
	Employees   string  `json:"employees"`
	Chunks      string  `json:"chunks"`
	ChunksDone  int     `json:"chunks_done"`
	Elapsed     string  `json:"elapsed"`
	ETA         string  `json:"eta"`
	Estado      string  `json:"estado"`
	EstadoLabel string  `json:"estado_label"`
	Tone        string  `json:"tone"`
	Final       bool    `json:"final"`
	// Reload: the run's final details could not be sent; the page loads again.
	Reload bool `json:"reload,omitempty"`
}

func newProgressEvent(p progress.Snapshot, final *engine.Report, run store.Run) progressEvent {
	e := progressEvent{Percent: p.Percent, PercentText: percent(p.Percent),
		Employees: count(p.EmployeesDone) + " de " + count(p.TotalEmployees),
		Chunks:    count(p.ChunksDone) + " de " + count(p.TotalChunks), ChunksDone: p.ChunksDone,
		Elapsed: duration(p.Elapsed), ETA: "—", Estado: string(run.Estado)}
	if final != nil {
		e.Estado, e.Final = string(final.Run.Estado), true
	}
	if run.Finished() {
		e.Final = true
	}
	if p.ETA > 0 && !e.Final {
		e.ETA = duration(p.ETA)
	}
	e.EstadoLabel, e.Tone = estadoLabel(domain.Estado(e.Estado)), estadoTone(domain.Estado(e.Estado))
	return e
}

// ---- Explain

type explainView struct {
	Ex      engine.Explanation
	Nombre  string
	Refusal string // why the rules refuse the employee, when they do
}

func (d *Dashboard) explainPage(w http.ResponseWriter, r *http.Request) {
	closingID, ok1 := d.pathID(w, r, "closing")
	if !ok1 {
		return
	}
	employeeID, ok2 := d.pathID(w, r, "employee")
	if !ok2 || !d.allowRead(w, r, methodExplain) {
		return
	}
	ex, err := d.engine.ExplainEmployee(r.Context(), closingID, employeeID)
	v := explainView{Ex: ex}
	var ee *engine.Error
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Reason == engine.ReasonAmountOutOfRange && ex.EmployeeID != 0:
		v.Refusal = ee.Msg
	default:
		d.engineError(w, r, err)
		return
	}
	v.Nombre = ex.Computed.NombreCompleto
	if v.Nombre == "" {
		v.Nombre = ex.Sources.Libro.Nombre.String
	}
	d.render(w, r, "explain", "layout", http.StatusOK, pageData{Title: "Empleado " + strconv.FormatInt(employeeID, 10), Nav: "runs", View: v})
}
