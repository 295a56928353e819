package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
