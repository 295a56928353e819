package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rut"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// explain prints, for one employee of a closing, where each figure comes from.
func explain(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newCallFlags("explain")
	closing := fs.Int64("closing", 0, "closing id")
	rutFlag := fs.String("rut", "", "the employee's RUT, in any spelling (12.345.678-5, 12345678-5)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *closing <= 0 || *rutFlag == "" {
		return usageErrorf("-closing N and -rut R are required")
	}
	if err := checkRUT(*rutFlag); err != nil {
		return err
	}
	client, closeConn, err := fs.conn.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: *closing, Rut: *rutFlag})
	if err != nil {
		return err
	}
	return fs.out.print(stdout, resp, func(w io.Writer) { printExplanation(w, resp) })
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

// conceptGroups are the sections explain prints concepts in, by tipo_concepto
// (trimmed, lower-cased, as R6 compares it): haberes and descuentos with their
// subtotals, which are the record's totals; informativos (days, hours) are
// quantities, printed as plain numbers and added to nothing; a type the rules
// do not count last (docs/rules.md, R6).
var conceptGroups = []struct{ typ, title string }{
	{"haber", "haberes"}, {"descuento", "descuentos"}, {"informativo", "informativos (quantities, not money; in no total)"},
}

func printExplanation(w io.Writer, r *consolidationv1.ExplainEmployeeResponse) {
	c := r.GetComputed()
	nov := "no novedades row"
	if r.GetNovedadesId() != 0 {
		nov = fmt.Sprintf("novedades row %d", r.GetNovedadesId())
	}
	fmt.Fprintf(w, "employee %s of closing %d (month %s): libro row %d, %s\n", r.GetRut(), r.GetClosingId(), cmp.Or(r.GetMonth(), "?"),
		r.GetEmployeeId(), nov)
	fmt.Fprintf(w, "  %s, %s, %s\n", c.GetNombreCompleto(), c.GetCargo(), c.GetCentroCosto())
	fmt.Fprintln(w, "\nconcepts (R5: a non-zero novedades value takes precedence over the libro; line ids libro/novedades):")
	t := &table{right: []bool{false, false, true, true, true, false, false, false, false}}
	t.row("  ", "code", "name", "libro", "novedades", "value", "from", "rule", "lines", "why")
	byType := map[string][]*consolidationv1.ConceptDecision{}
	var others []string
	for _, d := range r.GetConcepts() {
		typ := conceptType(d, c)
		if _, seen := byType[typ]; !seen && !slices.ContainsFunc(conceptGroups, func(g struct{ typ, title string }) bool { return g.typ == typ }) {
			others = append(others, typ)
		}
		byType[typ] = append(byType[typ], d)
	}
	groups := slices.Clone(conceptGroups)
	for _, typ := range others {
		groups = append(groups, struct{ typ, title string }{typ, fmt.Sprintf("type %q (counted in no total, R6)", typ)})
	}
	for _, g := range groups {
		ds := byType[g.typ]
		if len(ds) == 0 {
			continue
		}
		t.heading(g.title)
		amount := func(cents int64) string { return money.Cents(cents).CLP() }
		if g.typ == "informativo" {
			amount = quantity
		}
		var subtotal int64
		for _, d := range ds {
			libro, novedades, value, from := "-", "-", "no line", "-"
			if d.GetInLibro() {
				libro = amount(d.GetLibroCents())
			}
			if d.GetInNovedades() {
				novedades = amount(d.GetNovedadesCents())
			}
			if d.GetChosen() {
				value, from = amount(d.GetChosenCents()), d.GetSource()
				subtotal += d.GetChosenCents()
			}
			t.row("  ", d.GetCode(), conceptName(d), libro, novedades, value, from, d.GetRule(),
				lineIDs(d.GetLibroLines())+"/"+lineIDs(d.GetNovedadesLines()), d.GetReason())
		}
		if g.typ == "haber" || g.typ == "descuento" {
			t.row("  ", "", "subtotal "+g.title, "", "", money.Cents(subtotal).CLP(), "", "", "", "")
		}
	}
	t.write(w)

	fmt.Fprintf(w, "\nflags (R7: movements dated in, or absences overlapping, %s):\n", cmp.Or(r.GetMonth(), "the closing's month"))
	t = &table{}
	for _, f := range r.GetFlags() {
		t.row("  ", f.GetFlag(), strconv.FormatBool(f.GetValue()), f.GetReason())
		for _, m := range f.GetMovements() {
			kind, span := "alta/baja", m.GetDate()
			if m.GetTable() == "nomina_movimiento_ausentismo" {
				kind, span = "absence", m.GetDate()+" to "+cmp.Or(m.GetEndDate(), "(open, no end date)")
			}
			t.heading(fmt.Sprintf("      %s %s %s (%s row %d)", kind, cmp.Or(m.GetType(), "?"), span, m.GetTable(), m.GetId()))
		}
	}
	t.write(w)

	fmt.Fprintln(w)
	s := r.GetStored()
	t = &table{right: []bool{false, true, true, true}}
	t.row("  ", "", "haberes", "descuentos", "líquido")
	t.row("  ", "computed now", money.Cents(c.GetTotalHaberesCents()).CLP(), money.Cents(c.GetTotalDescuentosCents()).CLP(),
		money.Cents(c.GetLiquidoPagarCents()).CLP())
	if s != nil {
		t.row("  ", fmt.Sprintf("stored (row %d, consolidation %d)", s.GetId(), s.GetConsolidationId()),
			money.Cents(s.GetTotalHaberesCents()).CLP(), money.Cents(s.GetTotalDescuentosCents()).CLP(), money.Cents(s.GetLiquidoPagarCents()).CLP())
	}
	t.write(w)
	switch {
	case s == nil:
		fmt.Fprintln(w, "stored: no consolidated row for this employee")
	case s.GetLiquidoPagarCents() != c.GetLiquidoPagarCents() || len(s.GetConcepts()) != len(c.GetConcepts()):
		fmt.Fprintln(w, "the stored row differs from what the sources give now: they changed since the run")
	}
}

// conceptType is the tipo_concepto a concept is grouped by: the record's line's
// when chosen, else its first source line's; trimmed and lower-cased (R6).
func conceptType(d *consolidationv1.ConceptDecision, c *consolidationv1.ConsolidatedEmployee) string {
	typ := ""
	for _, l := range c.GetConcepts() {
		if l.GetCode() == d.GetCode() {
			typ = l.GetType()
		}
	}
	for _, ls := range [][]*consolidationv1.SourceLine{d.GetLibroLines(), d.GetNovedadesLines()} {
		if typ == "" && len(ls) > 0 {
			typ = ls[0].GetType()
		}
	}
	return strings.ToLower(strings.TrimSpace(typ))
}

// conceptName is the name of a concept's first libro line, else its first
// novedades line.
func conceptName(d *consolidationv1.ConceptDecision) string {
	for _, ls := range [][]*consolidationv1.SourceLine{d.GetLibroLines(), d.GetNovedadesLines()} {
		if len(ls) > 0 {
			return ls[0].GetName()
		}
	}
	return ""
}

// quantity writes an informativo value (days, hours; stored as numeric(12,2)
// like money) as a plain number: 30, 30,5, 1.234,25.
func quantity(cents int64) string {
	sign, u := "", uint64(cents)
	if cents < 0 {
		sign, u = "-", -u
	}
	s := sign + money.Grouped(int64(u/100))
	if frac := u % 100; frac != 0 {
		s += strings.TrimSuffix(fmt.Sprintf(",%02d", frac), "0")
	}
	return s
}

func lineIDs(ls []*consolidationv1.SourceLine) string {
	if len(ls) == 0 {
		return "-"
	}
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = fmt.Sprint(l.GetLineId())
	}
	return strings.Join(ids, ",")
}

// table writes rows of cells in columns as wide as their widest cell (in
// characters: names carry accents), left-aligned, or right-aligned where right
// says (amounts); the last column is not padded. A row's first value is its
// indent; a heading is a line of its own between rows, written as it is.
type table struct {
	right []bool
	lines []tableLine
}

type tableLine struct {
	heading string // a heading line; else a row
	indent  string
	cells   []string
}

func (t *table) row(indent string, cells ...string) {
	t.lines = append(t.lines, tableLine{indent: indent, cells: cells})
}

func (t *table) heading(s string) { t.lines = append(t.lines, tableLine{heading: s}) }

func (t *table) write(w io.Writer) {
	var widths []int
	for _, l := range t.lines {
		for i, c := range l.cells {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, l := range t.lines {
		if l.heading != "" {
			fmt.Fprintln(w, l.heading)
			continue
		}
		var b strings.Builder
		b.WriteString(l.indent)
		for i, c := range l.cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case i < len(t.right) && t.right[i]:
				b.WriteString(pad + c)
			case i == len(l.cells)-1:
				b.WriteString(c)
			default:
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
