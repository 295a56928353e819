package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/pgtest"
)

// djangoViews is run by Django's shell: the application's own views through
// Django's test client, as its dashboard calls them. consolidar_datos_nomina
// starts the run over the service's HTTP API (mTLS, the application's
// certificate), is called again while the run goes (409), progreso_consolidacion
// is polled until the metrics are there, and consolidar_datos_nomina once more on
// the consolidated closing (400: its estado may not start a run) and on a closing
// that does not exist (404, Django's own). One JSON line per answer.
const djangoViews = `
import json, os, time
from django.test import Client
closing = os.environ["CLOSING"]
c = Client()
def post(pk):
    r = c.post(f"/api/nomina/cierres/{pk}/consolidar_datos_nomina/")
    return {"status": r.status_code, "body": r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}}
print(json.dumps({"start": post(closing)}), flush=True)
print(json.dumps({"again": post(closing)}), flush=True)
seen = []
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    view = Client().get(f"/api/nomina/cierres/{closing}/progreso_consolidacion/").json()
    p = view["progreso"].get("progreso_porcentaje")
    if p is not None and (not seen or seen[-1] != p):
        seen.append(p)
    if view["metricas"] and view["estado"] != "consolidando_datos":
        print(json.dumps({"percents": seen, "last": view}), flush=True)
        break
    time.sleep(0.05)
print(json.dumps({"consolidated": post(closing)}), flush=True)
print(json.dumps({"missing": post(999999)}), flush=True)
`

type djangoAnswer struct {
	Status int `json:"status"`
	Body   struct {
		Message  string `json:"message"`
		TaskID   int64  `json:"task_id"`
		CierreID int64  `json:"cierre_id"`
		Estado   string `json:"estado"`
		Error    string `json:"error"`
		Reason   string `json:"reason"`
	} `json:"body"`
}

// TestDjangoViewsOverTheHTTPAPI: the payroll application's two views, unchanged
// in shape, work against the real services: the start view answers the old
// {message, task_id, cierre_id, estado} and maps the service's refusals to 409
// and 400 with their reason; the progress view, reading Django's cache, sees the
// run move and end at 100 % with its metrics.
func TestDjangoViewsOverTheHTTPAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	httpAddr := freeAddr(t)
	// Chunks 1 and 2 are held a while: the run is still going when the view is
	// called again, and its progress is seen between its ends.
	c := newCluster(t, clusterOptions{workers: 1, tls: dev, privateRedis: true, schema: pgtest.DjangoSchema,
		coordEnv:  []string{"HTTP_ADDR=" + httpAddr, "REDIS_PREFIX=" + progress.DefaultPrefix},
		workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=1=2s,2=2s"}})
	closing := c.generate(300, 77)

	django, err := localdb.Django()
	require.NoError(t, err)
	cmd := django.Command(ctx, c.dbURL, "shell", "-c", djangoViews)
	cmd.Env = append(cmd.Env, "DJANGO_REDIS_URL="+c.redis.URL, "CLOSING="+itoa(closing),
		"CONSOLIDATION_HTTP_URL=https://"+httpAddr, "CONSOLIDATION_TLS_CA="+dev.App.CA,
		"CONSOLIDATION_TLS_CERT="+dev.App.Cert, "CONSOLIDATION_TLS_KEY="+dev.App.Key)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var lines struct {
		Start, Again, Consolidated, Missing *djangoAnswer
		Percents                            []float64
		Last                                struct {
			Estado   string             `json:"estado"`
			Progreso djangoProgress     `json:"progreso"`
			Metricas map[string]float64 `json:"metricas"`
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		require.NoError(t, json.Unmarshal([]byte(l), &lines), l)
	}
	require.NotNil(t, lines.Start, "%s\n%s", out, stderr.String())

	require.Equal(t, 200, lines.Start.Status, "%+v", lines.Start)
	require.Equal(t, closing, lines.Start.Body.CierreID)
	require.Positive(t, lines.Start.Body.TaskID)
	require.Equal(t, string(domain.EstadoConsolidando), lines.Start.Body.Estado)
	require.NotEmpty(t, lines.Start.Body.Message)

	require.Equal(t, 409, lines.Again.Status, "a run in progress: %+v", lines.Again)
	require.NotEmpty(t, lines.Again.Body.Error)

	require.Equal(t, string(domain.EstadoConsolidados), lines.Last.Estado)
	require.Equal(t, 100.0, lines.Last.Progreso.ProgresoPorcentaje)
	require.Equal(t, 300, lines.Last.Progreso.EmpleadosProcesados)
	require.Equal(t, lines.Start.Body.TaskID, lines.Last.Progreso.ConsolidationID)
	require.Contains(t, lines.Last.Metricas, "tiempo_total")
	require.Greater(t, len(lines.Percents), 1, "the progress was seen moving: %v", lines.Percents)
	require.Less(t, lines.Percents[0], 100.0, "%v", lines.Percents)

	require.Equal(t, 400, lines.Consolidated.Status, "%+v", lines.Consolidated)
	require.Equal(t, "ESTADO_MAY_NOT_START", lines.Consolidated.Body.Reason)
	require.Equal(t, 404, lines.Missing.Status)

	final := c.waitEnd(lines.Start.Body.TaskID, time.Minute)
	require.Equal(t, launch.AppIdentity, final.GetRequestedBy(), "the view called as the application's certificate")
}
