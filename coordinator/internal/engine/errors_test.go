package engine

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/plan"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "a", "retry-2026-03/closing 7", "~!@#$%^&*()_+{}|:<>?", strings.Repeat("x", MaxRequestIDLen)} {
		require.NoError(t, validRequestID(ok), "%q", ok)
	}
	for _, bad := range []string{strings.Repeat("x", MaxRequestIDLen+1), "tab\there", "new\nline", "ñandú", "nul\x00", "del\x7f"} {
		err := validRequestID(bad)
		var ee *Error
		require.ErrorAs(t, err, &ee, "%q", bad)
		require.Equal(t, KindInvalidArgument, ee.Kind)
		require.Equal(t, []FieldViolation{{Field: "request_id", Description: ee.Msg}}, ee.Fields)
		require.Contains(t, ee.Msg, "request_id")
	}
}

func TestRUTRefusalListsEveryRowItNames(t *testing.T) {
	t.Parallel()
	p := store.RUTProblems{
		Bad:           []store.BadRUT{{Table: "nomina_empleado_cierre", RowID: 12, Raw: "12.345.678-0"}},
		BadCount:      3,
		Repeated:      []store.RepeatedRUT{{Table: "nomina_empleado_cierre_novedades", RUT: "7654321-6", RowIDs: []int64{40, 41}}},
		RepeatedCount: 1,
	}
	e := rutRefusal(9, p)
	require.Equal(t, KindFailedPrecondition, e.Kind)
	require.Equal(t, `closing 9 cannot be consolidated: 3 RUT(s) do not normalize: nomina_empleado_cierre row 12; `+
		`and 2 more; 1 RUT(s) appear in more than one row of the same source: nomina_empleado_cierre_novedades rows [40 41]`, e.Msg)
	require.NotContains(t, e.Msg, "7654321")
	require.Equal(t, ReasonRUTsRefused, e.Reason)
	require.Equal(t, map[string]string{"closing_id": "9", "invalid_ruts": "3", "repeated_ruts": "1", "violations_listed": "3"}, e.Metadata)
	require.Equal(t, []PreconditionViolation{
		{Type: ViolationRUTInvalid, Subject: "nomina_empleado_cierre/12", Description: "its RUT does not normalize"},
		{Type: ViolationRUTRepeated, Subject: "nomina_empleado_cierre_novedades/40", Description: "rows [40 41] of nomina_empleado_cierre_novedades share one RUT"},
		{Type: ViolationRUTRepeated, Subject: "nomina_empleado_cierre_novedades/41", Description: "rows [40 41] of nomina_empleado_cierre_novedades share one RUT"},
	}, e.Preconditions)
}

func TestClosingTooLargeCarriesItsReason(t *testing.T) {
	t.Parallel()
	err := checkPlanBounds(4, plan.MaxEmployees+1, 0)
	var ee *Error
	require.ErrorAs(t, err, &ee)
	require.Equal(t, KindFailedPrecondition, ee.Kind)
	require.Equal(t, ReasonClosingTooLarge, ee.Reason)
	require.Equal(t, map[string]string{"closing_id": "4", "employees": strconv.Itoa(plan.MaxEmployees + 1),
		"max_employees": strconv.Itoa(plan.MaxEmployees)}, ee.Metadata)
	require.Len(t, ee.Preconditions, 1)
	require.Equal(t, ViolationTooLarge, ee.Preconditions[0].Type)
	require.Equal(t, "nomina_cierrenomina/4", ee.Preconditions[0].Subject)
	require.NoError(t, checkPlanBounds(4, plan.MaxEmployees, 0))
}
