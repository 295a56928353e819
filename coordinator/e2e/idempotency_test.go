package e2e_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// detailsOf splits a status's details by type; every detail must be one of the
// four the service sends.
func detailsOf(t *testing.T, err error) (info *errdetails.ErrorInfo, bad *errdetails.BadRequest,
	pre *errdetails.PreconditionFailure, res *errdetails.ResourceInfo) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			bad = d
		case *errdetails.PreconditionFailure:
			pre = d
		case *errdetails.ResourceInfo:
			res = d
		default:
			t.Fatalf("unexpected detail %T: %v", d, d)
		}
	}
	if info != nil {
		require.Equal(t, engine.ErrorDomain, info.GetDomain())
	}
	return info, bad, pre, res
}

func (c *cluster) runsOf(closing int64) int {
	c.t.Helper()
	var n int
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closing).Scan(&n))
	return n
}

// TestRetryWithTheSameRequestID: a caller whose reply was lost calls again with the
// same request_id and gets the run the first call started, with the first call's
// reply, while it runs and after it ended, whatever else the retry says; nothing
// new is started.
func TestRetryWithTheSameRequestID(t *testing.T) {
	t.Parallel()
	// The only chunk holds 4s before committing: the run is surely running while the
	// retries below are made.
	c := newCluster(t, clusterOptions{workers: 1, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=0=4s"}})
	ctx := context.Background()
	closing := c.generate(80, 301)
	req := &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 80, RequestId: "payroll-2026-03/closing-run-1"}
	first := c.consolidate(req)
	require.Equal(t, string(domain.EstadoConsolidando), first.GetEstado())

	again := c.consolidate(req)
	require.True(t, proto.Equal(first, again), "retry answered %v, first call %v", again, first)
	// AIP-155: the same id is the same request, whatever its other fields.
	other := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true, ChunkSize: 20,
		Mode: consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_FULL, RequestId: req.GetRequestId()})
	require.True(t, proto.Equal(first, other))
	running, err := c.client.GetConsolidation(ctx, runRef(first.GetConsolidationId()))
	require.NoError(t, err)
	require.Nil(t, running.GetConsolidation().GetFinishedAt(), "the retries were made while the run was running")
	require.Equal(t, req.GetRequestId(), running.GetConsolidation().GetRequestId())

	// Without the id (or with another) it is a new request: refused while the run
	// runs, the run's id in the details.
	for _, id := range []string{"", "payroll-2026-03/closing-run-2"} {
		_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing, RequestId: id})
		require.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)
		info, _, _, _ := detailsOf(t, err)
		require.NotNil(t, info)
		require.Equal(t, engine.ReasonRunInProgress, info.GetReason())
		require.Equal(t, map[string]string{"consolidation_id": itoa(first.GetConsolidationId()), "closing_id": itoa(closing)},
			info.GetMetadata())
	}

	final := c.waitEnd(first.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())
	after := c.consolidate(req)
	require.True(t, proto.Equal(first, after), "after the end: %v, first call %v", after, first)
	require.Equal(t, 1, c.runsOf(closing), "a retry stored a run")
	requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))

	// A new request from datos_consolidados without force is refused, and the
	// details say why.
	_, err = c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing, RequestId: "another"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "set force") // the message is as it was
	info, _, pre, _ := detailsOf(t, err)
	require.Equal(t, engine.ReasonEstadoMayNotStart, info.GetReason())
	require.Equal(t, string(domain.EstadoConsolidados), info.GetMetadata()["estado"])
	require.Len(t, pre.GetViolations(), 1)
	require.Equal(t, "nomina_cierrenomina/"+itoa(closing), pre.GetViolations()[0].GetSubject())
	require.Equal(t, 1, c.runsOf(closing))
}

// TestConcurrentFirstCallsWithOneRequestID: callers racing with one request_id all
// get the one run the unique index let in.
func TestConcurrentFirstCallsWithOneRequestID(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	closing := c.generate(200, 302)
	const callers = 6
	ids := make([]int64, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			resp, err := c.client.Consolidate(context.Background(),
				&consolidationv1.ConsolidateRequest{ClosingId: closing, RequestId: "same-key"})
			ids[i], errs[i] = resp.GetConsolidationId(), err
		})
	}
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, ids[0], ids[i])
	}
	require.Equal(t, 1, c.runsOf(closing))
	c.requireCleanResult(closing, ids[0], nil)
}

// TestRefusalDetails: a RUT refusal lists the rows it names in a
// PreconditionFailure with the totals in its ErrorInfo; an invalid request_id, a
// missing closing and a missing dependency each say so in their details.
func TestRefusalDetails(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	ctx := context.Background()

	closing := c.generate(40, 303)
	var a, b, nov int64
	require.NoError(t, c.pool.QueryRow(ctx, "SELECT min(id), max(id) FROM nomina_empleado_cierre WHERE cierre_id = $1", closing).Scan(&a, &b))
	require.NoError(t, c.pool.QueryRow(ctx, "SELECT min(id) FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1", closing).Scan(&nov))
	_, err := c.pool.Exec(ctx, `UPDATE nomina_empleado_cierre SET rut = CASE WHEN id = $1 THEN '12.345.678-0' ELSE '12345678-5' END
		WHERE id = ANY($2)`, a, []int64{a, b})
	require.NoError(t, err)
	_, err = c.pool.Exec(ctx, "UPDATE nomina_empleado_cierre_novedades SET rut = 'sin rut' WHERE id = $1", nov)
	require.NoError(t, err)
	// A libro row whose RUT repeats b's, besides the one that does not normalize.
	var dup int64
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT min(id) FROM nomina_empleado_cierre WHERE cierre_id = $1 AND id <> ALL($2)`,
		closing, []int64{a, b}).Scan(&dup))
	_, err = c.pool.Exec(ctx, "UPDATE nomina_empleado_cierre SET rut = '0012.345.678-5' WHERE id = $1", dup)
	require.NoError(t, err)

	c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.FailedPrecondition, "2 RUT(s) do not normalize")
	_, err = c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing, RequestId: "r"})
	info, _, pre, _ := detailsOf(t, err)
	require.Equal(t, engine.ReasonRUTsRefused, info.GetReason())
	require.Equal(t, map[string]string{"closing_id": itoa(closing), "invalid_ruts": "2", "repeated_ruts": "1",
		"violations_listed": "4"}, info.GetMetadata())
	type violation struct{ Type, Subject string }
	var got []violation
	for _, v := range pre.GetViolations() {
		got = append(got, violation{v.GetType(), v.GetSubject()})
		require.NotEmpty(t, v.GetDescription())
	}
	require.ElementsMatch(t, []violation{
		{engine.ViolationRUTInvalid, "nomina_empleado_cierre/" + itoa(a)},
		{engine.ViolationRUTInvalid, "nomina_empleado_cierre_novedades/" + itoa(nov)},
		{engine.ViolationRUTRepeated, "nomina_empleado_cierre/" + itoa(min(dup, b))},
		{engine.ViolationRUTRepeated, "nomina_empleado_cierre/" + itoa(max(dup, b))},
	}, got)
	require.Zero(t, c.runsOf(closing))

	for _, id := range []string{strings.Repeat("k", engine.MaxRequestIDLen+1), "línea", "tab\tkey"} {
		c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing, RequestId: id}, codes.InvalidArgument, "request_id")
		_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing, RequestId: id})
		_, bad, _, _ := detailsOf(t, err)
		require.Len(t, bad.GetFieldViolations(), 1)
		require.Equal(t, "request_id", bad.GetFieldViolations()[0].GetField())
	}
	_, err = c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: -1})
	_, bad, _, _ := detailsOf(t, err)
	require.Equal(t, "closing_id", bad.GetFieldViolations()[0].GetField())

	_, err = c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: 987654})
	require.Equal(t, codes.NotFound, status.Code(err))
	info, _, _, res := detailsOf(t, err)
	require.Equal(t, engine.ReasonClosingNotFound, info.GetReason())
	require.Equal(t, "987654", info.GetMetadata()["closing_id"])
	require.Equal(t, "nomina_cierrenomina", res.GetResourceType())
	require.Equal(t, "987654", res.GetResourceName())

	t.Run("UnavailableNamesTheDependency", func(t *testing.T) {
		t.Parallel()
		c := newCluster(t, clusterOptions{workers: 0})
		_, err := c.client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{ClosingId: c.generate(10, 1)})
		require.Equal(t, codes.Unavailable, status.Code(err))
		info, _, _, _ := detailsOf(t, err)
		require.Equal(t, engine.ReasonDependencyUnavailable, info.GetReason())
		require.Equal(t, map[string]string{"dependency": "workers"}, info.GetMetadata())
	})
}

// closingRows is every result row of a closing, employees and concepts, whole (ids
// and every column) as PostgreSQL spells the row, sorted.
func (c *cluster) closingRows(closing int64) []string {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), `
		SELECT 'employee ' || e::text FROM nomina_empleado_consolidado e WHERE e.cierre_id = $1
		UNION ALL
		SELECT 'concept ' || k::text FROM nomina_concepto_empleado_consolidado k
		JOIN nomina_empleado_consolidado e ON e.id = k.empleado_consolidado_id WHERE e.cierre_id = $1
		ORDER BY 1`, closing)
	require.NoError(c.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(c.t, err)
	return out
}

// requireOneRowPerEmployee checks what a reader of the closing sees: one employee
// row per libro employee, no more, no less, each with its concepts. It returns how
// many of them run wrote.
func (c *cluster) requireOneRowPerEmployee(closing, run int64, employees int) int {
	c.t.Helper()
	var rows, distinct, ofRun, withoutConcepts int
	require.NoError(c.t, c.pool.QueryRow(context.Background(), `
		SELECT count(*), count(DISTINCT empleado_origen_id), count(*) FILTER (WHERE consolidation_run_id = $2),
		       count(*) FILTER (WHERE NOT EXISTS (SELECT FROM nomina_concepto_empleado_consolidado k
		                                          WHERE k.empleado_consolidado_id = e.id))
		FROM nomina_empleado_consolidado e WHERE cierre_id = $1`, closing, run).Scan(&rows, &distinct, &ofRun, &withoutConcepts))
	require.Equal(c.t, employees, rows, "employee rows a reader sees")
	require.Equal(c.t, employees, distinct, "employees a reader sees")
	require.Zero(c.t, withoutConcepts, "employees a reader sees without their concepts")
	return ofRun
}

// TestForcedRunKeepsThePreviousResults: a forced run replaces the closing's results
// chunk by chunk, so a reader always sees one row per employee; cancelled midway
// it leaves them exactly as they were (ids, every column, concepts); completed, it
// leaves only its own rows and nothing saved.
func TestForcedRunKeepsThePreviousResults(t *testing.T) {
	t.Parallel()
	forEachSchema(t, testForcedRunKeepsThePreviousResults)
}

func testForcedRunKeepsThePreviousResults(t *testing.T, schema pgtest.Schema) {
	// Chunk 2 of the forced run holds long before committing; the first run has
	// one chunk (index 0), so the hold is the forced run's.
	c := newCluster(t, clusterOptions{schema: schema, workers: 2, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=2=30s"}})
	ctx := context.Background()
	const employees = 100
	closing := c.generate(employees, 304)
	firstRun := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: employees}).GetConsolidationId()
	c.requireCleanResult(closing, firstRun, nil)
	before := c.closingRows(closing)
	require.NotEmpty(t, before)

	forced := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true, ChunkSize: 25}).GetConsolidationId()
	// Until the three chunks not held have committed, a reader sees one row per
	// employee at every look, not only at the end.
	deadline := time.Now().Add(time.Minute)
	for {
		c.requireOneRowPerEmployee(closing, forced, employees)
		resp, err := c.client.GetConsolidation(ctx, runRef(forced))
		require.NoError(t, err)
		run := resp.GetConsolidation()
		require.Equal(t, int32(4), run.GetTotalChunks())
		if run.GetChunksSucceeded() == 3 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the chunks not held did not commit")
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, 75, c.requireOneRowPerEmployee(closing, forced, employees), "rows of the forced run while chunk 2 is held")

	_, err := c.client.CancelConsolidation(ctx, &consolidationv1.CancelConsolidationRequest{
		Ref: &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: forced}})
	require.NoError(t, err)
	final := c.waitEnd(forced, time.Minute)
	require.Equal(t, domain.EstadoCancelada, domain.Estado(final.GetEstado()))
	require.Equal(t, before, c.closingRows(closing), "the previous results, exactly")
	c.requireNothingSaved()

	// Forced again (from consolidacion_cancelada), this time to the end.
	again := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true, ChunkSize: 25}).GetConsolidationId()
	final = c.waitEnd(again, time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())
	requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))
	require.Equal(t, employees, c.requireOneRowPerEmployee(closing, again, employees), "only the run's own rows are left")
	c.requireNothingSaved()
}

func (c *cluster) requireNothingSaved() {
	c.t.Helper()
	var n int
	require.NoError(c.t, c.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM consolidation_previous_chunk)
		+ (SELECT count(*) FROM consolidation_previous_result)`).Scan(&n))
	require.Zero(c.t, n, "saved previous rows are left")
}
