package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/rut"
	"github.com/nominacl/consolidation/pkg/store"
)

// Explanation is what Explain reports of one employee of a closing.
type Explanation struct {
	ClosingID   int64
	EmployeeID  int64 // the libro row
	NovedadesID int64 // 0: no novedades row
	Sources     rules.Sources
	Month       rules.Month // the closing's month, whose movements set the flags (R7)
	// AbsenceTypes is the tipo_ausentismo of each absence the flags show, by row
	// id: read beside the sources for the analyst (the rules do not read it).
	AbsenceTypes map[int64]string
	// Computed is the record the rules give from the sources as they are now, and
	// Decisions how they decided it.
	Computed  rules.Consolidated
	Decisions rules.Explanation
	Stored    *store.StoredRecord // the closing's row of the employee; nil when none
}

// Explain says where each figure of an employee's consolidated record comes from.
// It reads the employee's sources with the reader a worker uses (a chunk of one)
// and runs the rules on them with rules.Explain, the same code as
// rules.Consolidate, which records its decisions as it takes them; then it reads
// the row as stored. It logs ids only.
func (e *Engine) Explain(ctx context.Context, closingID int64, rawRUT string) (Explanation, error) {
	if closingID <= 0 {
		return Explanation{}, InvalidArgument("closing_id", "closing_id must be > 0")
	}
	canon, err := rut.Normalize(rawRUT)
	if pe := (*rut.ParseError)(nil); errors.As(err, &pe) {
		// The reason only: the message must not quote the RUT.
		return Explanation{}, InvalidArgument("rut", "rut is not a valid RUT (R1): %v", pe.Reason)
	}
	if err != nil {
		return Explanation{}, InvalidArgument("rut", "rut is not a valid RUT (R1)")
	}
	closing, err := e.closings.GetClosing(ctx, closingID)
	if errors.Is(err, store.ErrNotFound) {
		return Explanation{}, closingNotFound(closingID, "closing %d does not exist", closingID)
	}
	if err != nil {
		return Explanation{}, err
	}
	empID, err := e.records.LibroEmployeeOf(ctx, closingID, canon)
	var rutErr *store.RUTError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Explanation{}, employeeNotFound(closingID)
	case errors.As(err, &rutErr):
		return Explanation{}, rutRefusedRow(closingID, rutErr)
	case err != nil:
		return Explanation{}, err
	}
	return e.explain(ctx, closing, empID)
}

// ExplainEmployee is Explain for the libro employee with that row id (the id a
// failed employee is listed by, which carries no personal data).
func (e *Engine) ExplainEmployee(ctx context.Context, closingID, employeeID int64) (Explanation, error) {
	if closingID <= 0 {
		return Explanation{}, InvalidArgument("closing_id", "closing_id must be > 0")
	}
	if employeeID <= 0 {
		return Explanation{}, InvalidArgument("employee_id", "employee_id must be > 0")
	}
	closing, err := e.closings.GetClosing(ctx, closingID)
	if errors.Is(err, store.ErrNotFound) {
		return Explanation{}, closingNotFound(closingID, "closing %d does not exist", closingID)
	}
	if err != nil {
		return Explanation{}, err
	}
	return e.explain(ctx, closing, employeeID)
}

func employeeNotFound(closingID int64) *Error {
	nf := errorf(KindNotFound, "closing %d has no libro employee with that RUT", closingID).with(ReasonEmployeeNotFound, ids(closingID, 0))
	nf.Resource = &Resource{Type: "nomina_empleado_cierre"}
	return nf
}

// explain explains the libro employee empID of a closing. When the rules refuse
// the employee (an amount out of range) the error comes with the explanation as
// far as the rules got: its sources and the concepts decided before the refusal.
func (e *Engine) explain(ctx context.Context, closing store.Closing, empID int64) (Explanation, error) {
	closingID := closing.ID
	var rutErr *store.RUTError
	src, err := e.records.ReadChunk(ctx, closing, empID, empID)
	if errors.As(err, &rutErr) {
		return Explanation{}, rutRefusedRow(closingID, rutErr)
	}
	if err != nil {
		return Explanation{}, err
	}
	if len(src.Employees) != 1 {
		return Explanation{}, errorf(KindNotFound, "closing %d has no libro employee %d (or it was removed while it was read)", closingID, empID).
			with(ReasonEmployeeNotFound, ids(closingID, 0))
	}
	ex := Explanation{ClosingID: closingID, EmployeeID: empID, Sources: src.Employees[0], Month: src.Month}
	if n := ex.Sources.Novedades; n != nil {
		ex.NovedadesID = n.ID
	}
	var overflow *rules.OverflowError
	ex.Computed, ex.Decisions, err = rules.Explain(ex.Sources, src.Month)
	if errors.As(err, &overflow) {
		return ex, failedPrecondition(ReasonAmountOutOfRange, ids(closingID, 0), PreconditionViolation{
			Type: ViolationAmount, Subject: subject("nomina_empleado_cierre", empID)}, "%v", overflow)
	}
	if err != nil {
		return Explanation{}, err
	}
	absences := make([]int64, len(ex.Sources.Ausentismos))
	for i, a := range ex.Sources.Ausentismos {
		absences[i] = a.ID
	}
	if ex.AbsenceTypes, err = e.records.AbsenceTypes(ctx, absences); err != nil {
		return Explanation{}, err
	}
	stored, ok, err := e.records.StoredRecordOf(ctx, closingID, ex.Sources.Libro.RUT)
	if err != nil {
		return Explanation{}, err
	}
	if ok {
		ex.Stored = &stored
	}
	e.logger.InfoContext(ctx, "employee explained", "closing_id", closingID, "employee_id", empID,
		"concepts", len(ex.Decisions.Concepts), "stored", ok)
	return ex, nil
}

// rutRefusedRow is the refusal of an explanation whose employee's RUT repeats in
// a source, which a run would refuse too (docs/lifecycle.md#refusals).
func rutRefusedRow(closingID int64, r *store.RUTError) *Error {
	return failedPrecondition(ReasonRUTsRefused, ids(closingID, 0), PreconditionViolation{Type: ViolationRUTRepeated,
		Subject: subject(r.Table, r.RowID)}, "closing %d: %v", closingID, r)
}

// Date formats a movement's date as YYYY-MM-DD ("" for the zero time).
func Date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}
