package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nominacl/consolidation/pkg/config"
)

// AlgorithmVersion is what nomina_metrica_consolidacion.version_algoritmo
// records: the build's version in at most 20 characters (config.Build.Short), so
// a metrics row says which release consolidated the closing.
func AlgorithmVersion() string { return config.BuildInfo().Short() }

// sqlDeleteMetrics and sqlInsertMetrics replace the closing's metrics row with the run's: the old row
// is deleted and the new one inserted (the service has no UPDATE on the table, docs/database.md;
// nothing references the row). Employees and records count what the
// run left in the tables; chunks_procesados every chunk of the ledger but those the
// run's end cancelled (never tried, or abandoned).
var sqlDeleteMetrics = `DELETE FROM nomina_metrica_consolidacion WHERE cierre_id = (SELECT cierre_id FROM consolidation_run WHERE id = $1)`

var sqlInsertMetrics = sqlf(`
INSERT INTO nomina_metrica_consolidacion (cierre_id, total_empleados, chunks_procesados, chunks_exitosos,
	registros_creados, tiempo_total, tiempo_promedio_chunk, throughput_empleados_sec, throughput_registros_sec,
	memoria_pico_mb, cpu_promedio_percent, chunk_size_utilizado, workers_utilizados, version_algoritmo,
	fecha_procesamiento, consolidation_run_id)
SELECT r.cierre_id, m.employees, m.processed, m.succeeded, m.records, m.seconds, m.avg_chunk,
       m.employees / nullif(m.seconds, 0), m.records / nullif(m.seconds, 0), m.peak_mb, m.cpu,
       r.chunk_size, m.workers, $3, now(), r.id
FROM consolidation_run r,
LATERAL (
	SELECT CASE WHEN $2 THEN 0 ELSE coalesce(sum(c.employees) FILTER (WHERE c.status = {succeeded}), 0) END AS employees,
	       CASE WHEN $2 THEN 0 ELSE coalesce(sum(c.records) FILTER (WHERE c.status = {succeeded}), 0) END AS records,
	       count(*) FILTER (WHERE c.status = {succeeded}) AS succeeded,
	       count(*) FILTER (WHERE c.status <> {cancelled}) AS processed,
	       extract(epoch FROM clock_timestamp() - r.started_at)::double precision AS seconds,
	       avg(c.duration_seconds) FILTER (WHERE c.status = {succeeded}) AS avg_chunk,
	       max(c.peak_rss_bytes) / 1048576.0 AS peak_mb,
	       100 * sum(c.cpu_seconds) / nullif(sum(c.duration_seconds), 0) AS cpu,
	       count(DISTINCT c.worker) FILTER (WHERE c.status = {succeeded}) AS workers
	FROM consolidation_chunk c WHERE c.run_id = r.id
) m
WHERE r.id = $1`)

// Metrics is the closing's nomina_metrica_consolidacion row.
type Metrics struct {
	RunID                  int64
	TotalEmpleados         int
	ChunksProcesados       int
	ChunksExitosos         int
	RegistrosCreados       int64
	TiempoTotal            float64
	TiempoPromedioChunk    float64
	ThroughputEmpleadosSec float64
	ThroughputRegistrosSec float64
	MemoriaPicoMB          float64
	CPUPromedioPercent     float64
	ChunkSizeUtilizado     int
	WorkersUtilizados      int
	VersionAlgoritmo       string
}

// GetMetrics reads the metrics row of a closing.
func GetMetrics(ctx context.Context, q Querier, closingID int64) (Metrics, error) {
	var m Metrics
	var run pgtype.Int8
	err := q.QueryRow(ctx, `
		SELECT consolidation_run_id, total_empleados, chunks_procesados, chunks_exitosos, registros_creados, tiempo_total,
		       coalesce(tiempo_promedio_chunk, 0), coalesce(throughput_empleados_sec, 0),
		       coalesce(throughput_registros_sec, 0), coalesce(memoria_pico_mb, 0), coalesce(cpu_promedio_percent, 0),
		       chunk_size_utilizado, coalesce(workers_utilizados, 0), version_algoritmo
		FROM nomina_metrica_consolidacion WHERE cierre_id = $1`, closingID).
		Scan(&run, &m.TotalEmpleados, &m.ChunksProcesados, &m.ChunksExitosos, &m.RegistrosCreados, &m.TiempoTotal,
			&m.TiempoPromedioChunk, &m.ThroughputEmpleadosSec, &m.ThroughputRegistrosSec, &m.MemoriaPicoMB,
			&m.CPUPromedioPercent, &m.ChunkSizeUtilizado, &m.WorkersUtilizados, &m.VersionAlgoritmo)
	if err != nil {
		return m, fmt.Errorf("reading the metrics of closing %d: %w", closingID, interpretError(err))
	}
	m.RunID = run.Int64
	return m, nil
}
