package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/synth"
)

// TestExplainForTheAnalyst: explain of an employee with a line of every concept
// type and an absence still open, against a coordinator and a worker. Concepts
// come grouped by type, haberes and descuentos with subtotals, informativos as
// plain numbers; the columns line up past a ten-digit amount; the absence shows
// its type and that it has no end; the closing's month is said; -json carries the
// same.
func TestExplainForTheAnalyst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, cierrectl := startCluster(t)
	s, err := synth.Generate(ctx, pool, synth.Config{Employees: 5, Seed: 7})
	require.NoError(t, err)
	closing := strconv.FormatInt(s.ClosingID, 10)

	// The first employee gets lines of its own: two haberes (one of ten digits),
	// a descuento, two informativos; no novedades lines; one open absence.
	var empID int64
	var rawRUT string
	require.NoError(t, pool.QueryRow(ctx, `SELECT id, rut FROM nomina_empleado_cierre WHERE cierre_id = $1 ORDER BY id LIMIT 1`,
		s.ClosingID).Scan(&empID, &rawRUT))
	for _, q := range []string{
		`DELETE FROM nomina_registro_concepto_empleado WHERE empleado_id = $1`,
		`DELETE FROM nomina_registro_concepto_empleado_novedades WHERE empleado_id IN (SELECT n.id
			FROM nomina_empleado_cierre_novedades n JOIN nomina_empleado_cierre e ON nomina_rut_canonical(n.rut) = nomina_rut_canonical(e.rut)
			WHERE e.id = $1 AND n.cierre_id = e.cierre_id)`,
		`DELETE FROM nomina_movimiento_alta_baja WHERE nomina_rut_canonical(rut) = (SELECT nomina_rut_canonical(rut) FROM nomina_empleado_cierre WHERE id = $1)`,
		`DELETE FROM nomina_movimiento_ausentismo WHERE nomina_rut_canonical(rut) = (SELECT nomina_rut_canonical(rut) FROM nomina_empleado_cierre WHERE id = $1)`,
		`INSERT INTO nomina_registro_concepto_empleado (empleado_id, codigo_concepto, nombre_concepto, valor, tipo_concepto) VALUES
			($1, 'SB', 'Sueldo base', 1234567890.12, 'haber'), ($1, 'COL', 'Colación', 50000, 'Haber'),
			($1, 'AFP', 'Cotización AFP', 100000.50, 'descuento'), ($1, 'DIAS', 'Días trabajados', 30, 'informativo'),
			($1, 'HORAS', 'Horas trabajadas', 180.5, 'informativo')`,
		`INSERT INTO nomina_movimiento_ausentismo (rut, tipo_ausentismo, fecha_inicio, fecha_fin, dias_ausentismo)
			SELECT rut, 'licencia', DATE '2026-01-15', NULL, 0 FROM nomina_empleado_cierre WHERE id = $1`,
	} {
		_, err := pool.Exec(ctx, q, empID)
		require.NoError(t, err, q)
	}

	code, stdout, stderr := cierrectl("explain", "-closing", closing, "-rut", rawRUT)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, fmt.Sprintf(" of closing %s (month 2026-03): libro row %d, ", closing, empID))
	require.Contains(t, stdout, "stored: no consolidated row for this employee\n")

	code, _, stderr = cierrectl("consolidate", "-closing", closing)
	require.Equal(t, ExitOK, code, stderr)
	code, stdout, stderr = cierrectl("explain", "-closing", closing, "-rut", rawRUT)
	require.Equal(t, ExitOK, code, stderr)
	t.Log("\n" + stdout)

	// Grouped, in this order, with subtotals that are the record's totals.
	haberes := strings.Index(stdout, "\nhaberes\n")
	descuentos := strings.Index(stdout, "\ndescuentos\n")
	informativos := strings.Index(stdout, "\ninformativos ")
	require.True(t, 0 < haberes && haberes < descuentos && descuentos < informativos, stdout)
	require.Regexp(t, `(?m)^  +subtotal haberes +\$ 1\.234\.617\.890,12$`, stdout)
	require.Regexp(t, `(?m)^  +subtotal descuentos +\$ 100\.000,50$`, stdout)
	require.Regexp(t, `(?m)^  computed now +\$ 1\.234\.617\.890,12 +\$ 100\.000,50 +\$ 1\.234\.517\.889,62$`, stdout)
	require.Regexp(t, `(?m)^  stored \(row \d+, consolidation \d+\) +\$ 1\.234\.617\.890,12 +\$ 100\.000,50 +\$ 1\.234\.517\.889,62$`, stdout)
	// Informativos are quantities, with no subtotal.
	require.Regexp(t, `(?m)^  DIAS +Días trabajados +30 +- +30 +libro `, stdout)
	require.Regexp(t, `(?m)^  HORAS +Horas trabajadas +180,5 +- +180,5 +libro `, stdout)
	require.NotContains(t, stdout, "$ 30,00")
	require.NotContains(t, stdout, "subtotal informativos")
	// Every concept row's source column starts at the same place, the
	// ten-digit amount's row as the others.
	from := regexp.MustCompile(`  libro  `)
	col := -1
	for _, code := range []string{"SB", "COL", "AFP", "DIAS", "HORAS"} {
		line := regexp.MustCompile(`(?m)^  ` + code + ` .*$`).FindString(stdout)
		require.NotEmpty(t, line, code)
		at := from.FindStringIndex(line)
		require.NotNil(t, at, line)
		chars := utf8.RuneCountInString(line[:at[0]]) // a column is so many characters, accents or not
		if col < 0 {
			col = chars
		}
		require.Equal(t, col, chars, "column of %s's source: %q", code, line)
	}
	// The open absence: its type, its start, no end.
	require.Regexp(t, `(?m)^  tiene_ausentismo +true `, stdout)
	require.Regexp(t, `(?m)^      absence +licencia +2026-01-15 to \(open, no end date\) \(nomina_movimiento_ausentismo row \d+\)$`, stdout)

	// -json: the proto's fields, the month and the absence's type in them.
	code, stdout, stderr = cierrectl("explain", "-json", "-closing", closing, "-rut", rawRUT)
	require.Equal(t, ExitOK, code, stderr)
	var got struct {
		Month string `json:"month"`
		Flags []struct {
			Flag      string `json:"flag"`
			Value     bool   `json:"value"`
			Movements []struct {
				Type    string `json:"type"`
				Date    string `json:"date"`
				EndDate string `json:"end_date"`
			} `json:"movements"`
		} `json:"flags"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
	require.Equal(t, "2026-03", got.Month)
	var absences int
	for _, f := range got.Flags {
		if f.Flag == "tiene_ausentismo" {
			require.True(t, f.Value)
			require.Len(t, f.Movements, 1)
			require.Equal(t, "licencia", f.Movements[0].Type)
			require.Equal(t, "2026-01-15", f.Movements[0].Date)
			require.Empty(t, f.Movements[0].EndDate)
			absences++
		}
	}
	require.Equal(t, 1, absences, stdout)
}
