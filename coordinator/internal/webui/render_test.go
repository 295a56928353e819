package webui

import (
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/store"
)

// The run page and its details events carry the run's shared details
// (rendered once for all its tabs) at their place, once, whoever asks, and
// never the mark that stood for them.
func TestRunPageSplicesTheSharedDetails(t *testing.T) {
	t.Parallel()
	open, err := grpcx.Security{}.Authorization(nil)
	require.NoError(t, err)
	d := &Dashboard{logger: slog.New(slog.DiscardHandler), cfg: Config{ProxyHeader: DefaultProxyHeader, Authorization: open},
		pages: map[string]*template.Template{}}
	for _, name := range []string{"run", "message"} {
		d.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	const shared = "<section id=\"the-shared-details\">\nmapa\n</section>"
	v := runView{Run: store.Run{ID: 7, ClosingID: 3, Estado: domain.EstadoConsolidando}, Running: true, summary: []byte(shared)}
	token := strings.Repeat("t", 43) // the form token in the caller's cookie, which its page set
	request := func(identity string) *http.Request {
		r := httptest.NewRequest("GET", "/ui/runs/7", nil)
		r.RemoteAddr = "127.0.0.1:1"
		if identity != "" { // an identified caller may cancel (no policy: every method is open)
			r.Header.Set(DefaultProxyHeader, identity)
		}
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: token})
		return r
	}
	d.cfg.TrustedProxies, _ = ParseTrustedProxies("127.0.0.1")
	page := func(identity string) string {
		w := httptest.NewRecorder()
		d.renderShared(w, request(identity), "run", "layout", http.StatusOK, d.runPageData(v), v.summary)
		require.Equal(t, http.StatusOK, w.Code)
		return w.Body.String()
	}
	details := func(identity string) string {
		var b strings.Builder
		r := request(identity)
		var a streamActions
		require.NoError(t, a.render(d, d.streamCaller(r), v))
		// The actions end a line: the shared details after them are framed once
		// for every tab (sharedFrame), not copied into each tab's event.
		require.True(t, len(a.before) == 0 || a.before[len(a.before)-1] == '\n', "%q", a.before)
		require.NoError(t, writeDetails(&b, a.before, v.summary, a.after))
		events := readEvents(t, b.String())
		require.Len(t, events, 1)
		require.Equal(t, "details", events[0].name)
		return events[0].data
	}
	for what, body := range map[string]string{"page": page(""), "details": details("")} {
		require.Equal(t, 1, strings.Count(body, shared), "%s: the shared details once", what)
		require.NotContains(t, body, sharedMark, what)
		require.NotContains(t, body, `id="cancel"`, "%s: a read-only caller has no cancel button", what)
	}
	require.Regexp(t, `(?s)id="progress".*<div id="details">\s*`+regexp.QuoteMeta(shared)+`</div>.*</html>$`, page(""))
	for what, body := range map[string]string{"page": page("ops@nomina.cl"), "details": details("ops@nomina.cl")} {
		require.Contains(t, body, `id="cancel"`, "%s: an allowed caller's actions come before the shared details", what)
		require.Less(t, strings.Index(body, `id="cancel"`), strings.Index(body, shared), what)
		require.Contains(t, body, `value="`+token+`"`, "%s: the form carries the cookie's token", what)
	}
	// A stream sets no cookie: without one, its details carry no forms.
	var a streamActions
	noCookie := request("ops@nomina.cl")
	noCookie.Header.Del("Cookie")
	require.NoError(t, a.render(d, d.streamCaller(noCookie), v))
	require.NotContains(t, string(a.before), `id="cancel"`)

	// A stream renders its caller's actions again when what the run allows
	// changes, and only then.
	a = streamActions{}
	caller := d.streamCaller(request("ops@nomina.cl"))
	require.NoError(t, a.render(d, caller, v))
	require.Contains(t, string(a.before), `id="cancel"`)
	kept := a.before
	require.NoError(t, a.render(d, caller, v))
	require.Same(t, &kept[0], &a.before[0], "rendered again with nothing changed")
	ended := v
	ended.Running, ended.CanRetry = false, true
	require.NoError(t, a.render(d, caller, ended))
	require.NotContains(t, string(a.before), `id="cancel"`, "the run ended: no cancel any more")
	require.Contains(t, string(a.before), `id="retry"`, "a partial run: retry")

	// A template with no place for them is an error, never a page without them.
	w := httptest.NewRecorder()
	d.renderShared(w, httptest.NewRequest("GET", "/ui/", nil), "message", "layout", http.StatusOK, pageData{View: "x"}, v.summary)
	require.Equal(t, http.StatusInternalServerError, w.Code)
	require.NotContains(t, w.Body.String(), shared)
}

// A details event's data is the HTML it was given, line for line, whatever
// ends its lines, however it was cut into writes: the browser reads back
// exactly what HTML's own parsing would (CR LF and a lone CR are line feeds).
func TestEventDataKeepsTheLines(t *testing.T) {
	t.Parallel()
	for _, html := range []string{
		"one line",
		"<ol>\n<li>a</li>\n\n<li>b</li>\n</ol>\n",
		"a\r\nb\rc\n\r\nd",
		"\n\nstarts with empty lines",
		"data: not a field\nevent: nor this\n: nor a comment",
	} {
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(html)
		want = strings.TrimSuffix(want, "\n") // an event's data loses its last line feed
		for cut := range len(html) + 1 {
			var b strings.Builder
			e := &eventData{w: &b}
			_, err := e.Write([]byte(html[:cut]))
			require.NoError(t, err)
			_, err = e.Write([]byte(html[cut:]))
			require.NoError(t, err)
			require.NoError(t, e.end())
			events := readEvents(t, "event: details\n"+b.String())
			require.Len(t, events, 1, "%q cut at %d: %q", html, cut, b.String())
			require.Equal(t, want, events[0].data, "%q cut at %d", html, cut)
		}
	}
}

type sseEvent struct{ name, data string }

// readEvents parses an event stream as a browser's EventSource does (the
// HTML standard's "event stream interpretation"), for the fields used here.
func readEvents(t *testing.T, stream string) []sseEvent {
	t.Helper()
	var events []sseEvent
	var name string
	var data []string
	lines := strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(stream), "\n")
	require.Equal(t, "", lines[len(lines)-1], "a stream ends with a line feed")
	for _, line := range lines[:len(lines)-1] {
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if data != nil {
				events = append(events, sseEvent{name: name, data: strings.Join(data, "\n")})
			}
			name, data = "", nil
		case field == "event":
			name = value
		case field == "data":
			data = append(data, value)
		}
	}
	require.Nil(t, data, "an event left open at the end of the stream")
	return events
}

// The embedded assets carry their content types (the pages are served with
// nosniff, so a wrong one would leave a page unstyled or without its script).
func TestStaticAssetsHaveTheirTypes(t *testing.T) {
	t.Parallel()
	static, err := fs.Sub(staticFS, "static")
	require.NoError(t, err)
	h := http.StripPrefix("/ui/static/", staticHandler(http.FileServerFS(static)))
	for file, want := range map[string]string{"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/ui/static/"+file, nil))
		require.Equal(t, http.StatusOK, w.Code, file)
		require.Equal(t, want, w.Header().Get("Content-Type"), file)
		require.NotEmpty(t, w.Body.Bytes(), file)
	}
	entries, err := fs.ReadDir(static, ".")
	require.NoError(t, err)
	for _, e := range entries {
		require.Contains(t, staticTypes, path.Ext(e.Name()), "an embedded asset with no type of its own: %s", e.Name())
	}
}

// escapeNow escapes a page's template as its first execution would, without
// data, and stops at a template that cannot be escaped.
func TestEscapeNow(t *testing.T) {
	t.Parallel()
	good := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/run.html"))
	for _, entry := range append([]string{"layout"}, entryPoints["run"]...) {
		require.NoError(t, escapeNow(good, entry))
	}
	// html/template refuses to clone a template set once it has been escaped:
	// escaping did happen, before any page was served.
	_, err := good.Clone()
	require.ErrorContains(t, err, "after it has executed")

	bad := template.Must(template.New("bad").Parse(`{{define "e"}}{{if .}}<a href="{{end}}x{{end}}`))
	require.Error(t, escapeNow(bad, "e"))
	require.Error(t, escapeNow(good, "renamed"), "an entry point that is no template passed")
}
