package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rut"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// explain prints, for one employee of a closing, where each figure comes from.
func explain(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("explain")
	conn := addConnFlags(fs)
	closing := fs.Int64("closing", 0, "closing id")
	rutFlag := fs.String("rut", "", "the employee's RUT, in any spelling (12.345.678-5, 12345678-5)")
	out := addOutput(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *closing <= 0 || *rutFlag == "" {
		return usageErrorf("-closing N and -rut R are required")
	}
	if err := checkRUT(*rutFlag); err != nil {
		return err
	}
	client, closeConn, err := conn.dial()
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: *closing, Rut: *rutFlag})
	if err != nil {
		return err
	}
	return out.print(stdout, resp, func(w io.Writer) { printExplanation(w, resp) })
}

// checkRUT refuses a -rut that is no RUT before anything is sent, echoing it
// (it is the user's own input, on their terminal) and saying what is wrong.
func checkRUT(raw string) error {
	_, err := rut.Parse(raw)
	pe := (*rut.ParseError)(nil)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && errors.Is(err, rut.ErrCheckDigit):
		return usageErrorf("-rut %q: the check digit is wrong: that body's is %c", raw, pe.WantDV)
	case errors.As(err, &pe):
		return usageErrorf("-rut %q is not a RUT: %v (write it as 12.345.678-5 or 12345678-5)", raw, pe.Reason)
	default:
		return usageErrorf("-rut %q is not a RUT: %v", raw, err)
	}
}

func printExplanation(w io.Writer, r *consolidationv1.ExplainEmployeeResponse) {
	c := r.GetComputed()
	nov := "no novedades row"
	if r.GetNovedadesId() != 0 {
		nov = fmt.Sprintf("novedades row %d", r.GetNovedadesId())
	}
	fmt.Fprintf(w, "employee %s of closing %d: libro row %d, %s\n", r.GetRut(), r.GetClosingId(), r.GetEmployeeId(), nov)
	fmt.Fprintf(w, "  %s, %s, %s\n", c.GetNombreCompleto(), c.GetCargo(), c.GetCentroCosto())
	fmt.Fprintln(w, "concepts (R5: a non-zero novedades value takes precedence over the libro):")
	for _, d := range r.GetConcepts() {
		libro, novedades := "-", "-"
		if d.GetInLibro() {
			libro = fmt.Sprintf("%s %s", money.Cents(d.GetLibroCents()).CLP(), lineIDs(d.GetLibroLines()))
		}
		if d.GetInNovedades() {
			novedades = fmt.Sprintf("%s %s", money.Cents(d.GetNovedadesCents()).CLP(), lineIDs(d.GetNovedadesLines()))
		}
		chosen := "no line"
		if d.GetChosen() {
			chosen = fmt.Sprintf("%s from %s", money.Cents(d.GetChosenCents()).CLP(), d.GetSource())
		}
		fmt.Fprintf(w, "  %-10s libro %-22s novedades %-22s → %s  [%s] %s\n", d.GetCode(), libro, novedades, chosen,
			d.GetRule(), d.GetReason())
	}
	fmt.Fprintln(w, "flags (R7):")
	for _, f := range r.GetFlags() {
		fmt.Fprintf(w, "  %-17s %-5t %s\n", f.GetFlag(), f.GetValue(), f.GetReason())
		for _, m := range f.GetMovements() {
			span := m.GetDate()
			if m.GetEndDate() != "" {
				span += ".." + m.GetEndDate()
			}
			fmt.Fprintf(w, "      %s row %d %s %s\n", m.GetTable(), m.GetId(), m.GetType(), span)
		}
	}
	fmt.Fprintf(w, "computed now  haberes %s, descuentos %s, líquido %s\n", money.Cents(c.GetTotalHaberesCents()).CLP(),
		money.Cents(c.GetTotalDescuentosCents()).CLP(), money.Cents(c.GetLiquidoPagarCents()).CLP())
	s := r.GetStored()
	if s == nil {
		fmt.Fprintln(w, "stored        no consolidated row for this employee")
		return
	}
	fmt.Fprintf(w, "stored        haberes %s, descuentos %s, líquido %s (row %d, consolidation %d)\n",
		money.Cents(s.GetTotalHaberesCents()).CLP(), money.Cents(s.GetTotalDescuentosCents()).CLP(), money.Cents(s.GetLiquidoPagarCents()).CLP(),
		s.GetId(), s.GetConsolidationId())
	if s.GetLiquidoPagarCents() != c.GetLiquidoPagarCents() || len(s.GetConcepts()) != len(c.GetConcepts()) {
		fmt.Fprintln(w, "              the stored row differs from what the sources give now: they changed since the run")
	}
}

func lineIDs(ls []*consolidationv1.SourceLine) string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = fmt.Sprint(l.GetLineId())
	}
	return "(lines " + strings.Join(ids, ",") + ")"
}
