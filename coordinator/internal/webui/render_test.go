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

// The run page and its details carry the run's shared details (rendered once
// for all its tabs) at their place, once, whoever asks, and never the mark that
// stood for them.
func TestRunPageSplicesTheSharedDetails(t *testing.T) {
	t.Parallel()
	open, err := grpcx.Security{}.Authorization(nil)
	require.NoError(t, err)
	d := &Dashboard{logger: slog.New(slog.DiscardHandler), cfg: Config{ProxyHeader: DefaultProxyHeader, Authorization: open},
		pages: map[string]*template.Template{}}
	for _, name := range []string{"run", "message"} {
		d.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	const shared = template.HTML(`<section id="the-shared-details">mapa</section>`)
	v := runView{Run: store.Run{ID: 7, ClosingID: 3, Estado: domain.EstadoConsolidando}, Running: true, Summary: sharedMark}
	serve := func(tmpl, identity string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/ui/runs/7", nil)
		r.RemoteAddr = "127.0.0.1:1"
		w := httptest.NewRecorder()
		if identity != "" { // an identified caller may cancel (no policy: every method is open)
			d.cfg.TrustedProxies, _ = ParseTrustedProxies("127.0.0.1")
			r.Header.Set(DefaultProxyHeader, identity)
		}
		d.renderShared(w, r, "run", tmpl, http.StatusOK, pageData{Title: "Consolidación 7", Nav: "runs", View: v}, shared)
		return w
	}
	for _, tmpl := range []string{"layout", "details"} {
		w := serve(tmpl, "")
		require.Equal(t, http.StatusOK, w.Code, tmpl)
		body := w.Body.String()
		require.Equal(t, 1, strings.Count(body, string(shared)), "%s: the shared details once", tmpl)
		require.NotContains(t, body, sharedMark, tmpl)
		require.NotContains(t, body, `id="cancel"`, "%s: a read-only caller has no cancel button", tmpl)
		if tmpl == "layout" {
			require.Regexp(t, `(?s)id="progress".*<div id="details">\s*`+regexp.QuoteMeta(string(shared))+`</div>.*</html>$`, body)
		}
	}
	body := serve("details", "ops@nomina.cl").Body.String()
	require.Contains(t, body, `id="cancel"`, "an allowed caller's actions come before the shared details")
	require.Less(t, strings.Index(body, `id="cancel"`), strings.Index(body, string(shared)))

	// A template with no place for them is an error, never a page without them.
	w := httptest.NewRecorder()
	d.renderShared(w, httptest.NewRequest("GET", "/ui/", nil), "message", "layout", http.StatusOK, pageData{View: "x"}, shared)
	require.Equal(t, http.StatusInternalServerError, w.Code)
	require.NotContains(t, w.Body.String(), string(shared))
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
