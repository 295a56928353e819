package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/pgtest"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// djangoReadBack is run by Django's shell on a consolidated closing: what the
// payroll application sees of it through its ORM, printed as one JSON line.
const djangoReadBack = `
import json
from nomina.models import CierreNomina
c = CierreNomina.objects.get(id=CLOSING)
emps = list(c.empleadoconsolidado_set.order_by("id"))
e = emps[0]
print(json.dumps({
    "employees": len(emps),
    "fuentes_type": type(e.fuentes_utilizadas).__name__,
    "reglas_type": type(e.reglas_aplicadas).__name__,
    "fuentes_first": e.fuentes_utilizadas[0],
    "conceptos": sum(x.conceptos.count() for x in emps),
    "liquido_ok": all(x.liquido_pagar == x.total_haberes - x.total_descuentos for x in emps),
    "metrica_empleados": c.metrica_consolidacion.total_empleados,
    "metrica_version": c.metrica_consolidacion.version_algoritmo,
}))
c.delete()
print("deleted")
`

func TestDjangoReadsAndDeletesAConsolidatedClosing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCluster(t, clusterOptions{schema: pgtest.DjangoSchema, workers: 2})
	closing := c.generate(300, 141)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())

	// The services ran as the least-privileged role, not as a superuser.
	var superusers, sessions int
	require.NoError(t, c.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE r.rolsuper), count(*) FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
		WHERE a.datname = current_database() AND a.application_name LIKE 'consolidation-%'`).Scan(&superusers, &sessions))
	require.Positive(t, sessions, "no session of the services")
	require.Zero(t, superusers, "a service connected as a superuser")

	django, err := localdb.Django()
	require.NoError(t, err)
	script := strings.Replace(djangoReadBack, "CLOSING", itoa(closing), 1)
	out, err := django.Manage(ctx, c.dbURL, "shell", "-c", script)
	require.NoError(t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Equal(t, "deleted", lines[len(lines)-1], string(out))
	var seen struct {
		Employees        int    `json:"employees"`
		FuentesType      string `json:"fuentes_type"`
		ReglasType       string `json:"reglas_type"`
		FuentesFirst     string `json:"fuentes_first"`
		Conceptos        int64  `json:"conceptos"`
		LiquidoOK        bool   `json:"liquido_ok"`
		MetricaEmpleados int    `json:"metrica_empleados"`
		MetricaVersion   string `json:"metrica_version"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-2]), &seen), string(out))
	require.Equal(t, 300, seen.Employees)
	require.Equal(t, "list", seen.FuentesType, "JSON fields come back as lists")
	require.Equal(t, "list", seen.ReglasType)
	require.Equal(t, "libro", seen.FuentesFirst)
	require.Equal(t, final.GetRecordsCreated()-300, seen.Conceptos, "concept rows, as the run counted them")
	require.True(t, seen.LiquidoOK)
	require.Equal(t, 300, seen.MetricaEmpleados)
	require.NotEmpty(t, seen.MetricaVersion)

	// Deleting the closing from the application took everything under it, the
	// service's own ledger too, and nothing blocked it.
	for _, table := range []string{
		"nomina_empleado_cierre", "nomina_empleado_consolidado", "nomina_concepto_empleado_consolidado",
		"nomina_metrica_consolidacion", "consolidation_run", "consolidation_chunk", "consolidation_chunk_attempt",
	} {
		var n int
		require.NoError(t, c.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		require.Zero(t, n, "%s keeps rows of the deleted closing", table)
	}
}

// djangoProgressPoller is the payroll application's progress view, read through
// Django's own cache (django-redis, JSON serializer) in a loop: it prints the key
// Django's key function makes, then every progress it sees change, and ends with
// the progress and metrics once the metrics are there (the run's end), and what
// the application's progress view (nomina/views.py) answers then.
const djangoProgressPoller = `
import json, os, time
from django.core.cache import cache
from django.test import Client
closing = os.environ["CLOSING"]
progress_key = f"consolidacion_progress_cierre_{closing}"
metrics_key = f"consolidacion_metrics_cierre_{closing}"
print(json.dumps({"key": cache.make_key(progress_key)}), flush=True)
last = None
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    progreso = cache.get(progress_key, {})
    metricas = cache.get(metrics_key, {})
    if metricas:
        print(json.dumps({"progreso": cache.get(progress_key, {}), "metricas": metricas}), flush=True)
        view = Client().get(f"/api/nomina/cierres/{closing}/progreso_consolidacion/")
        print(json.dumps({"view_status": view.status_code, "view": view.json()}), flush=True)
        break
    if progreso != last:
        print(json.dumps({"progreso": progreso}), flush=True)
        last = progreso
    time.sleep(0.05)
`

// djangoProgress is the progress value as the application's view reads it.
type djangoProgress struct {
	TotalChunks         *int     `json:"total_chunks"`
	ChunksCompletados   int      `json:"chunks_completados"`
	EmpleadosProcesados int      `json:"empleados_procesados"`
	ProgresoPorcentaje  float64  `json:"progreso_porcentaje"`
	TiempoTranscurrido  float64  `json:"tiempo_transcurrido"`
	EtaSegundos         *float64 `json:"eta_segundos"`
	EtaRestante         *float64 `json:"eta_restante"`
	ConsolidationID     int64    `json:"consolidation_id"`
}

func TestDjangoCacheReadsProgressAndMetrics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     []string // the coordinator's and Django's alike
		wantKey string   // Django's key of the progress, before the closing id
	}{
		{"DefaultKeyPrefixAndVersion", nil, ":1:consolidacion_progress_cierre_"},
		{"KeyPrefixAndVersionSet", []string{"DJANGO_CACHE_KEY_PREFIX=nomina", "DJANGO_CACHE_VERSION=3"},
			"nomina:3:consolidacion_progress_cierre_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// A Redis of the test's own, so the keys are the application's exact names
			// (the default REDIS_PREFIX), and the application's tables (its view reads
			// the closing). Chunk 0 commits at once, 1 and 2 are held: the progress
			// stands at one chunk, then two, for a while.
			c := newCluster(t, clusterOptions{workers: 1, privateRedis: true, schema: pgtest.DjangoSchema,
				coordEnv:  append([]string{"REDIS_PREFIX=" + progress.DefaultPrefix}, tc.env...),
				workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=1=2s,2=4s"}})
			closing := c.generate(300, 142)

			django, err := localdb.Django()
			require.NoError(t, err)
			cmd := django.Command(ctx, c.dbURL, "shell", "-c", djangoProgressPoller)
			cmd.Env = append(append(cmd.Env, "DJANGO_REDIS_URL="+c.redis.URL, "CLOSING="+itoa(closing)), tc.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan(), "the poller printed nothing: %s", stderr.String())
			var key struct{ Key string }
			require.NoError(t, json.Unmarshal(lines.Bytes(), &key), lines.Text())
			require.Equal(t, tc.wantKey+itoa(closing), key.Key, "Django's key function")

			resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
			var seen []djangoProgress
			var raw []string // the lines seen, for a failure's message
			var end struct {
				Progreso djangoProgress     `json:"progreso"`
				Metricas map[string]float64 `json:"metricas"`
			}
			for lines.Scan() {
				var line struct {
					Progreso djangoProgress     `json:"progreso"`
					Metricas map[string]float64 `json:"metricas"`
				}
				require.NoError(t, json.Unmarshal(lines.Bytes(), &line), lines.Text())
				if line.Metricas != nil {
					end = line
					break
				}
				if line.Progreso.TotalChunks != nil { // {} until the run starts
					seen = append(seen, line.Progreso)
					raw = append(raw, lines.Text())
				}
			}
			require.NotNil(t, end.Metricas, "the poller ended without metrics: %s", stderr.String())
			require.True(t, lines.Scan(), "the view's answer: %s", stderr.String())
			var view struct {
				Status int `json:"view_status"`
				View   struct {
					Estado    string             `json:"estado"`
					Progreso  djangoProgress     `json:"progreso"`
					Metricas  map[string]float64 `json:"metricas"`
					Timestamp string             `json:"timestamp"`
				} `json:"view"`
			}
			require.NoError(t, json.Unmarshal(lines.Bytes(), &view), lines.Text())
			require.NoError(t, cmd.Wait(), stderr.String())
			final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
			require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())

			// While the run moved: every field there, percent below 100 at one chunk
			// and at two, and the elapsed time moving while a chunk was held: more
			// readings at one count of chunks done than a chunk's end writes (its
			// counters, then its elapsed time and ETA).
			percents := map[float64]bool{}
			elapsedAt := map[int]map[float64]bool{}
			for _, p := range seen {
				require.Equal(t, resp.GetConsolidationId(), p.ConsolidationID)
				require.Equal(t, 3, *p.TotalChunks)
				require.NotNil(t, p.EtaSegundos, "eta_segundos")
				require.NotNil(t, p.EtaRestante, "eta_restante")
				if p.ProgresoPorcentaje < 100 {
					percents[p.ProgresoPorcentaje] = true
				}
				if elapsedAt[p.ChunksCompletados] == nil {
					elapsedAt[p.ChunksCompletados] = map[float64]bool{}
				}
				elapsedAt[p.ChunksCompletados][p.TiempoTranscurrido] = true
			}
			require.True(t, percents[33.3] && percents[66.7], "percents seen below 100: %v", percents)
			require.True(t, len(elapsedAt[1]) >= 3 || len(elapsedAt[2]) >= 3,
				"the progress stood still between chunk ends:\n%s", strings.Join(raw, "\n"))

			// At the end: 100 %, every employee, and the run's metrics.
			p := end.Progreso
			require.Equal(t, resp.GetConsolidationId(), p.ConsolidationID)
			require.Equal(t, 100.0, p.ProgresoPorcentaje)
			require.Equal(t, []int{3, 3, 300}, []int{*p.TotalChunks, p.ChunksCompletados, p.EmpleadosProcesados})
			require.Zero(t, *p.EtaSegundos)
			require.Positive(t, p.TiempoTranscurrido)
			require.EqualValues(t, resp.GetConsolidationId(), end.Metricas["consolidation_id"])
			for _, k := range []string{"throughput_empleados_sec", "throughput_registros_sec", "tiempo_total", "workers_utilizados"} {
				require.Positive(t, end.Metricas[k], k)
			}
			for _, k := range []string{"memoria_pico_mb", "cpu_promedio_percent"} {
				require.Contains(t, end.Metricas, k)
			}

			// The application's progress view, unchanged, answers the same through
			// Django's test client, with the closing's estado.
			require.Equal(t, 200, view.Status)
			require.Equal(t, "datos_consolidados", view.View.Estado)
			require.Equal(t, end.Progreso, view.View.Progreso)
			require.Equal(t, end.Metricas, view.View.Metricas)
			require.NotEmpty(t, view.View.Timestamp)
		})
	}
}
