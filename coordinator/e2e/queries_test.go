package e2e_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// cierrectl runs a cierrectl command against the cluster's coordinator and
// returns its standard output; it requires exit status 0.
func (c *cluster) cierrectl(args ...string) string {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{args[0], "-addr", c.coord.Addr, "-plaintext"}, args[1:]...)
	code := cli.Main(context.Background(), args, &stdout, &stderr)
	require.Zero(c.t, code, "cierrectl %v: %s", args, stderr.String())
	return stdout.String()
}

// TestRunHistory: ListConsolidations filters by closing, estado and start time,
// lists newest first, and its pages meet without a gap or a repeat.
func TestRunHistory(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	ctx := context.Background()
	a, b := c.generate(20, 31), c.generate(20, 32)
	var runs []int64 // in start order
	for _, closing := range []int64{a, b, a} {
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true})
		c.waitEnd(resp.GetConsolidationId(), time.Minute)
		runs = append(runs, resp.GetConsolidationId())
	}
	_, err := c.pool.Exec(ctx, "UPDATE consolidation_run SET estado = $2 WHERE id = $1", runs[1], domain.EstadoError)
	require.NoError(t, err)

	list := func(req *consolidationv1.ListConsolidationsRequest) []int64 {
		t.Helper()
		resp, err := c.client.ListConsolidations(ctx, req)
		require.NoError(t, err)
		var ids []int64
		for _, r := range resp.GetConsolidations() {
			ids = append(ids, r.GetConsolidationId())
		}
		return ids
	}
	require.Equal(t, []int64{runs[2], runs[1], runs[0]}, list(&consolidationv1.ListConsolidationsRequest{}))
	require.Equal(t, []int64{runs[2], runs[0]}, list(&consolidationv1.ListConsolidationsRequest{ClosingId: a}))
	require.Equal(t, []int64{runs[1]}, list(&consolidationv1.ListConsolidationsRequest{Estado: string(domain.EstadoError)}))
	first, err := c.client.GetConsolidation(ctx, runRef(runs[1]))
	require.NoError(t, err)
	require.Equal(t, []int64{runs[2], runs[1]}, list(&consolidationv1.ListConsolidationsRequest{
		StartedAfter: first.GetConsolidation().GetStartedAt()}))
	require.Equal(t, []int64{runs[0]}, list(&consolidationv1.ListConsolidationsRequest{
		StartedBefore: first.GetConsolidation().GetStartedAt()}))

	// Pages of one.
	var paged []int64
	req := &consolidationv1.ListConsolidationsRequest{PageSize: 1}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 4)
		resp, err := c.client.ListConsolidations(ctx, req)
		require.NoError(t, err)
		require.Len(t, resp.GetConsolidations(), 1)
		paged = append(paged, resp.GetConsolidations()[0].GetConsolidationId())
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	require.Equal(t, []int64{runs[2], runs[1], runs[0]}, paged)

	// A summary carries the run's counts and totals.
	resp, err := c.client.ListConsolidations(ctx, &consolidationv1.ListConsolidationsRequest{ClosingId: b})
	require.NoError(t, err)
	got := resp.GetConsolidations()[0]
	require.EqualValues(t, 20, got.GetEmployeesConsolidated())
	require.True(t, got.GetControlTotals().GetVerified())

	// A token is only good with the filters it was made for; bad values are refused.
	tok, err := c.client.ListConsolidations(ctx, &consolidationv1.ListConsolidationsRequest{PageSize: 1})
	require.NoError(t, err)
	for _, bad := range []*consolidationv1.ListConsolidationsRequest{
		{PageSize: 1, ClosingId: a, PageToken: tok.GetNextPageToken()},
		{PageToken: "not-a-token"},
		{Estado: "abierto"},
		{PageSize: -1},
		{StartedAfter: timestamppb.New(time.Now()), StartedBefore: timestamppb.New(time.Now().Add(-time.Hour))},
	} {
		_, err := c.client.ListConsolidations(ctx, bad)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v: %v", bad, err)
	}

	out := c.cierrectl("list", "-closing", itoa(a))
	require.Equal(t, 3, strings.Count(out, "\n"), out) // header and two runs
	require.Contains(t, out, itoa(runs[2]))
	require.NotContains(t, out, " "+itoa(b)+" ")
	// -json: one run a line, newest first, the proto's field names.
	lines := strings.Split(strings.TrimSuffix(c.cierrectl("list", "-closing", itoa(a), "-json"), "\n"), "\n")
	require.Len(t, lines, 2)
	var newest struct {
		ConsolidationID string `json:"consolidation_id"`
		ClosingID       string `json:"closing_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &newest), lines[0])
	require.Equal(t, itoa(runs[2]), newest.ConsolidationID)
	require.Equal(t, itoa(a), newest.ClosingID)
}

// TestExplainEmployee: for an employee whose concept differs between libro and
// novedades, and one with a movement, the explanation names the source rows and
// agrees with the database.
func TestExplainEmployee(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	ctx := context.Background()
	closing := c.generate(120, 41)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	c.waitEnd(resp.GetConsolidationId(), time.Minute)

	// An employee with a concept taken from novedades over a different libro value,
	// asked by the RUT as the libro spells it.
	var libroID int64
	var rawRUT, code string
	require.NoError(t, c.pool.QueryRow(ctx, `
		SELECT e.id, e.rut, trim(l.codigo_concepto)
		FROM nomina_empleado_cierre e
		JOIN nomina_registro_concepto_empleado l ON l.empleado_id = e.id
		JOIN nomina_empleado_cierre_novedades n ON n.cierre_id = e.cierre_id AND nomina_rut_canonical(n.rut) = nomina_rut_canonical(e.rut)
		JOIN nomina_registro_concepto_empleado_novedades nl ON nl.empleado_id = n.id AND trim(nl.codigo_concepto) = trim(l.codigo_concepto)
		WHERE e.cierre_id = $1 AND nl.valor <> 0 AND nl.valor <> l.valor
		  AND (SELECT count(*) FROM nomina_registro_concepto_empleado x WHERE x.empleado_id = e.id AND trim(x.codigo_concepto) = trim(l.codigo_concepto)) = 1
		  AND (SELECT count(*) FROM nomina_registro_concepto_empleado_novedades x WHERE x.empleado_id = n.id AND trim(x.codigo_concepto) = trim(l.codigo_concepto)) = 1
		ORDER BY e.id LIMIT 1`, closing).Scan(&libroID, &rawRUT, &code))

	ex, err := c.client.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: closing, Rut: rawRUT})
	require.NoError(t, err)
	require.Equal(t, libroID, ex.GetEmployeeId())
	require.NotZero(t, ex.GetNovedadesId())
	var d *consolidationv1.ConceptDecision
	for _, cd := range ex.GetConcepts() {
		if cd.GetCode() == code {
			d = cd
		}
	}
	require.NotNil(t, d, "no decision on %s", code)
	require.Equal(t, "novedades", d.GetSource())
	require.Equal(t, "R5", d.GetRule())
	require.True(t, d.GetDiscrepancy())
	require.Len(t, d.GetLibroLines(), 1)
	require.Len(t, d.GetNovedadesLines(), 1)
	var libroCents, novCents int64
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT (valor * 100)::bigint FROM nomina_registro_concepto_empleado WHERE id = $1`,
		d.GetLibroLines()[0].GetLineId()).Scan(&libroCents))
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT (valor * 100)::bigint FROM nomina_registro_concepto_empleado_novedades WHERE id = $1`,
		d.GetNovedadesLines()[0].GetLineId()).Scan(&novCents))
	require.Equal(t, libroCents, d.GetLibroCents())
	require.Equal(t, novCents, d.GetNovedadesCents())
	require.Equal(t, novCents, d.GetChosenCents())
	require.NotEqual(t, libroCents, novCents)

	// The stored row is the database's, and agrees with the rules run now.
	require.NotNil(t, ex.GetStored())
	var storedLiquido, storedConcept int64
	require.NoError(t, c.pool.QueryRow(ctx, `
		SELECT (e.liquido_pagar * 100)::bigint, (k.valor * 100)::bigint FROM nomina_empleado_consolidado e
		JOIN nomina_concepto_empleado_consolidado k ON k.empleado_consolidado_id = e.id AND k.codigo_concepto = $3
		WHERE e.cierre_id = $1 AND e.empleado_origen_id = $2`, closing, libroID, code).Scan(&storedLiquido, &storedConcept))
	require.Equal(t, storedLiquido, ex.GetStored().GetLiquidoPagarCents())
	require.Equal(t, novCents, storedConcept)
	require.Equal(t, resp.GetConsolidationId(), ex.GetStored().GetConsolidationId())
	require.True(t, proto.Equal(withoutIDs(ex.GetStored()), ex.GetComputed()), "stored %v\ncomputed %v", ex.GetStored(), ex.GetComputed())

	// An employee with a movement in the month: the flag names the movement rows,
	// which are the employee's.
	var movedRUT string
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT rut FROM nomina_empleado_consolidado
		WHERE cierre_id = $1 AND (es_ingreso OR es_finiquito OR tiene_ausentismo) ORDER BY id LIMIT 1`, closing).Scan(&movedRUT))
	ex, err = c.client.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: closing, Rut: movedRUT})
	require.NoError(t, err)
	set := 0
	for _, f := range ex.GetFlags() {
		require.Equal(t, "R7", f.GetRule())
		if !f.GetValue() {
			require.Empty(t, f.GetMovements())
			continue
		}
		set++
		require.NotEmpty(t, f.GetMovements(), f.GetFlag())
		for _, m := range f.GetMovements() {
			var canon string
			require.Contains(t, []string{"nomina_movimiento_alta_baja", "nomina_movimiento_ausentismo"}, m.GetTable())
			require.NoError(t, c.pool.QueryRow(ctx, "SELECT nomina_rut_canonical(rut) FROM "+m.GetTable()+" WHERE id = $1",
				m.GetId()).Scan(&canon))
			require.Equal(t, movedRUT, canon)
		}
	}
	require.Positive(t, set)

	// Errors: an unknown RUT, a RUT that does not normalize.
	_, err = c.client.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: closing, Rut: "1-9"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	_, err = c.client.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: closing, Rut: "12345678-0"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	out := c.cierrectl("explain", "-closing", itoa(closing), "-rut", rawRUT)
	// The concept's row: its code, then (after its name and amounts) its source and rule.
	require.Regexp(t, `(?m)^  `+regexp.QuoteMeta(code)+` .*  novedades  R5  `, out)
	var doc struct {
		ClosingID string `json:"closing_id"`
		Concepts  []struct {
			Code string `json:"code"`
		} `json:"concepts"`
	}
	out = c.cierrectl("explain", "-closing", itoa(closing), "-rut", rawRUT, "-json")
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	require.Equal(t, itoa(closing), doc.ClosingID)
	require.NotEmpty(t, doc.Concepts)
}

// withoutIDs is a stored record without what only storing gives it (row and run
// ids), to compare with the record computed now.
func withoutIDs(e *consolidationv1.ConsolidatedEmployee) *consolidationv1.ConsolidatedEmployee {
	e = proto.Clone(e).(*consolidationv1.ConsolidatedEmployee)
	e.Id, e.ConsolidationId = 0, 0
	return e
}

// TestExport: cierrectl export writes CSV and xlsx whose amounts, read back, are
// the database's to the cent.
func TestExport(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	ctx := context.Background()
	closing := c.generate(60, 51)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	c.waitEnd(resp.GetConsolidationId(), time.Minute)

	// The database's rows, as the flat table's key and amounts.
	type row struct{ haberes, descuentos, liquido, valor string }
	rows, err := c.pool.Query(ctx, `
		SELECT e.rut, coalesce(k.codigo_concepto, ''), e.total_haberes::text, e.total_descuentos::text,
		       e.liquido_pagar::text, coalesce(k.valor::text, '')
		FROM nomina_empleado_consolidado e
		LEFT JOIN nomina_concepto_empleado_consolidado k ON k.empleado_consolidado_id = e.id
		WHERE e.cierre_id = $1`, closing)
	require.NoError(t, err)
	want := map[string]row{}
	for rows.Next() {
		var rut, code string
		var r row
		require.NoError(t, rows.Scan(&rut, &code, &r.haberes, &r.descuentos, &r.liquido, &r.valor))
		want[rut+"/"+code] = r
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, want)
	compare := func(table [][]string, format string) {
		t.Helper()
		require.Equal(t, "rut", table[0][0])
		require.Len(t, table, len(want)+1, format)
		for _, r := range table[1:] {
			w, ok := want[r[0]+"/"+r[11]]
			require.True(t, ok, "%s row %v is not in the database", format, r)
			require.Equal(t, w, row{r[7], r[8], r[9], r[14]}, "%s row %v", format, r)
		}
	}

	dir := t.TempDir()
	csvFile := filepath.Join(dir, "cierre.csv")
	c.cierrectl("export", "-closing", itoa(closing), "-format", "csv", "-o", csvFile)
	f, err := os.Open(csvFile)
	require.NoError(t, err)
	defer f.Close()
	table, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	compare(table, "csv")

	xlsxFile := filepath.Join(dir, "cierre.xlsx")
	c.cierrectl("export", "-closing", itoa(closing), "-format", "xlsx", "-o", xlsxFile)
	x, err := excelize.OpenFile(xlsxFile)
	require.NoError(t, err)
	defer x.Close()
	table, err = x.GetRows(cli.ExportSheet) // formatted: the 0.00 format's text
	require.NoError(t, err)
	compare(table, "xlsx")
	raw, err := x.GetRows(cli.ExportSheet, excelize.Options{RawCellValue: true})
	require.NoError(t, err)
	typ, err := x.GetCellType(cli.ExportSheet, "J2")
	require.NoError(t, err)
	require.NotEqual(t, excelize.CellTypeSharedString, typ, "liquido_pagar is a number, not text")
	require.NotEqual(t, excelize.CellTypeInlineString, typ, "liquido_pagar is a number, not text")
	style, err := x.GetCellStyle(cli.ExportSheet, "J2")
	require.NoError(t, err)
	st, err := x.GetStyle(style)
	require.NoError(t, err)
	require.Equal(t, 2, st.NumFmt, "0.00")
	require.Len(t, raw, len(table))

	// Refused while a run is in progress: its rows are changing.
	_, err = c.pool.Exec(ctx, "UPDATE consolidation_run SET finished_at = NULL WHERE id = $1", resp.GetConsolidationId())
	require.NoError(t, err)
	stream, err := c.client.ExportConsolidation(ctx, &consolidationv1.ExportConsolidationRequest{ClosingId: closing})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
}

// TestValidateOnly: a dry run of a good closing plans and writes nothing; a dry run
// of a refused one is refused exactly as the real call.
func TestValidateOnly(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	ctx := context.Background()
	closing := c.generate(130, 61)
	estado := c.estado(closing)
	runsBefore := c.runsOf(closing)

	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ValidateOnly: true, ChunkSize: 40})
	require.True(t, resp.GetValidateOnly())
	require.Zero(t, resp.GetConsolidationId())
	require.Equal(t, string(estado), resp.GetEstado())
	require.EqualValues(t, 130, resp.GetTotalEmployees())
	require.EqualValues(t, 40, resp.GetChunkSize())
	require.Len(t, resp.GetPlannedChunks(), int(resp.GetTotalChunks()))
	sum := int32(0)
	for i, ch := range resp.GetPlannedChunks() {
		require.EqualValues(t, i, ch.GetChunkIndex())
		sum += ch.GetEmployees()
	}
	require.EqualValues(t, 130, sum)
	var unmatched int32
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT count(*) FROM nomina_empleado_cierre_novedades n WHERE n.cierre_id = $1
		AND NOT EXISTS (SELECT FROM nomina_empleado_cierre e WHERE e.cierre_id = n.cierre_id
		                AND nomina_rut_canonical(e.rut) = nomina_rut_canonical(n.rut))`, closing).Scan(&unmatched))
	require.Equal(t, unmatched, resp.GetUnmatchedNovedades())
	require.Equal(t, runsBefore, c.runsOf(closing), "a dry run stored a run")
	require.Equal(t, estado, c.estado(closing), "a dry run moved estado")
	c.requireNoRows(closing)
	require.Contains(t, c.cierrectl("check", "-closing", itoa(closing)), "may be consolidated")

	// The real run plans the same.
	real := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 40})
	require.Equal(t, resp.GetTotalChunks(), real.GetTotalChunks())
	c.waitEnd(real.GetConsolidationId(), time.Minute)

	// Refused: datos_consolidados without force, and a RUT that does not normalize.
	refused := func(req *consolidationv1.ConsolidateRequest) {
		t.Helper()
		dry := proto.Clone(req).(*consolidationv1.ConsolidateRequest)
		dry.ValidateOnly = true
		runs := c.runsOf(req.GetClosingId())
		_, dryErr := c.client.Consolidate(ctx, dry)
		require.Error(t, dryErr)
		require.Equal(t, runs, c.runsOf(req.GetClosingId()))
		_, realErr := c.client.Consolidate(ctx, req)
		require.Error(t, realErr)
		dst, rst := status.Convert(dryErr), status.Convert(realErr)
		require.Equal(t, rst.Code(), dst.Code())
		require.Equal(t, rst.Message(), dst.Message())
		dd, rd := dst.Details(), rst.Details()
		require.Len(t, dd, len(rd))
		for i := range rd { // unpacked: an Any's bytes order a map as they please
			require.True(t, proto.Equal(rd[i].(proto.Message), dd[i].(proto.Message)), "detail %d: dry %v, real %v", i, dd[i], rd[i])
		}
	}
	refused(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	bad := c.generate(10, 62)
	_, err := c.pool.Exec(ctx, "UPDATE nomina_empleado_cierre SET rut = '12345678-0' WHERE id = (SELECT min(id) FROM nomina_empleado_cierre WHERE cierre_id = $1)", bad)
	require.NoError(t, err)
	refused(&consolidationv1.ConsolidateRequest{ClosingId: bad})
	refused(&consolidationv1.ConsolidateRequest{ClosingId: 987654})
}
